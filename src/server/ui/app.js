// barge's web UI: plain JavaScript over the JSON API. Every piece of data is put into the page as
// text (never as HTML), and every request carries the bearer token the user signed in with.
'use strict';

const TOKEN_KEY = 'barge.token';
const COLORS = {
  succeeded: '#2e8b57', running: '#2f6fd6', failed: '#c8372d', pending: '#a5a5a8',
  cancelled: '#5b5b60', cached: '#6aa980', lost: '#d98c1f', drained: '#8a6fd1', fenced: '#b05a9a',
};
const main = document.getElementById('main');
let refreshTimer = null;

// ---- helpers ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const badge = (state) => el('span', { class: `badge ${state}`, 'data-state': state }, state);

function duration(ms) {
  if (ms === undefined || ms === null || ms < 0) return '';
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
const bytes = (n) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n}${units[i]}`;
};

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}`,
               'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = '#/signin';
    throw new Error('signed out: the token was refused');
  }
  if (!res.ok) throw new Error(data.error ? data.error.message : `${res.status} ${res.statusText}`);
  return data;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function fail(err) {
  show(el('p', { class: 'error', 'data-testid': 'error' }, String(err.message || err)));
}

function every(ms, fn) {
  clearInterval(refreshTimer);
  refreshTimer = setInterval(() => fn().catch(() => {}), ms);
}

// ---- sign in ----

function signIn() {
  const input = el('input', { type: 'password', id: 'token', autocomplete: 'off',
                              placeholder: 'bearer token (BARGE_TOKEN)' });
  const message = el('p', { class: 'error' });
  const form = el('form', { class: 'card signin', onsubmit: async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    const res = await fetch('/api/runs?limit=1', { headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) {
      message.textContent = res.status === 401 ? 'That token was refused.' : `The server answered ${res.status}.`;
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    if (location.hash === '#/runs') route();
    else location.hash = '#/runs';
  } },
  el('h1', {}, 'Sign in to barge'),
  el('label', { for: 'token' }, 'API token'), input,
  el('button', { class: 'primary', type: 'submit' }, 'Sign in'), message);
  show(form);
  input.focus();
}

// ---- runs ----

async function runsPage(offset = 0) {
  const data = await api('GET', `/api/runs?limit=50&offset=${offset}`);
  const rows = data.items.map((r) => el('tr', { class: 'clickable', 'data-run': r.id,
                                                onclick: () => { location.hash = `#/runs/${r.id}`; } },
    el('td', {}, el('a', { href: `#/runs/${r.id}` }, r.id)), el('td', {}, r.pipeline),
    el('td', {}, badge(r.state)), el('td', {}, when(r.created_at)), el('td', {}, duration(r.elapsed_ms)),
    el('td', { class: 'wrap muted' }, r.error)));
  const pager = el('div', { class: 'pager' },
    el('button', { disabled: offset === 0, onclick: () => runsPage(Math.max(0, offset - 50)).catch(fail) }, 'Newer'),
    el('button', { disabled: data.next_offset === null, onclick: () => runsPage(data.next_offset).catch(fail) }, 'Older'));
  show(el('h1', {}, 'Runs'),
       el('div', { class: 'card' },
          el('table', { 'data-testid': 'runs' },
             el('thead', {}, el('tr', {}, ['Run', 'Pipeline', 'State', 'Created', 'Duration', 'Error'].map((h) => el('th', {}, h)))),
             el('tbody', {}, rows)),
          rows.length ? null : el('p', { class: 'muted' }, 'No runs yet.')),
       pager);
  every(3000, () => (location.hash.startsWith('#/runs') && !location.hash.startsWith('#/runs/') ? runsPage(offset) : Promise.resolve()));
}

// The DAG: steps in columns by depth, edges from each step to those that need it.
function drawDag(steps) {
  const depth = {};
  const byName = Object.fromEntries(steps.map((s) => [s.name, s]));
  const level = (name, seen = new Set()) => {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name)) return 0;
    seen.add(name);
    const needs = (byName[name] && byName[name].needs) || [];
    depth[name] = needs.length ? 1 + Math.max(...needs.map((n) => level(n, seen))) : 0;
    return depth[name];
  };
  steps.forEach((s) => level(s.name));
  const columns = [];
  for (const s of steps) (columns[depth[s.name]] = columns[depth[s.name]] || []).push(s);
  const W = 170, H = 46, GX = 60, GY = 18;
  const pos = {};
  columns.forEach((col, x) => col.forEach((s, y) => { pos[s.name] = { x: 10 + x * (W + GX), y: 10 + y * (H + GY) }; }));
  const width = 20 + columns.length * (W + GX) - GX;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  const g = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, 'data-testid': 'dag', role: 'img',
                         'aria-label': 'pipeline graph' });
  for (const s of steps) {
    for (const n of s.needs || []) {
      if (!pos[n]) continue;
      const a = pos[n], b = pos[s.name];
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      g.append(svg('path', { class: 'dag-edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    }
  }
  for (const s of steps) {
    const p = pos[s.name];
    const done = s.succeeded + s.cached;
    g.append(svg('g', { class: 'dag-node', 'data-step': s.name, 'data-state': s.state, transform: `translate(${p.x},${p.y})` },
      svg('title', {}, `${s.name}: ${s.state}, ${done}/${s.tasks} done`),
      svg('rect', { width: W, height: H, rx: 7, fill: COLORS[s.state] || COLORS.pending }),
      svg('text', { x: 10, y: 19, 'font-weight': 600 }, s.name.length > 22 ? `${s.name.slice(0, 21)}…` : s.name),
      svg('text', { x: 10, y: 36 }, `${done}/${s.tasks} · ${s.state}`)));
  }
  return g;
}

// The Gantt chart: one row per worker, one bar per attempt, on a canvas (fast at 10,000 bars).
function drawGantt(timeline) {
  const rows = timeline.rows;
  const workers = [];
  const first = {};
  for (const r of rows) {
    if (!(r[3] in first)) { first[r[3]] = r[5]; workers.push(r[3]); }
  }
  const canvas = el('canvas', { class: 'gantt', 'data-testid': 'gantt', 'data-bars': rows.length,
                                'data-workers': workers.length });
  const label = 190, rowH = 22, top = 18;
  const cssWidth = Math.max(600, main.clientWidth - 40);
  const cssHeight = top + Math.max(1, workers.length) * rowH + 6;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = cssWidth * ratio;
  canvas.height = cssHeight * ratio;
  canvas.style.height = `${cssHeight}px`;
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  // A loop, not Math.max(...rows): spreading 100k arguments overflows the stack.
  let end = Math.max(1, timeline.now_ms);
  for (const r of rows) end = Math.max(end, r[6]);
  const x = (ms) => label + (ms / end) * (cssWidth - label - 10);
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = '#6b6b70';
  ctx.fillText('0s', label, 12);
  ctx.fillText(duration(end), cssWidth - 60, 12);
  workers.forEach((w, i) => {
    ctx.fillStyle = i % 2 ? '#fafaf8' : '#f1f1ee';
    ctx.fillRect(0, top + i * rowH, cssWidth, rowH);
    ctx.fillStyle = '#1d1d1f';
    ctx.fillText(w.length > 28 ? `…${w.slice(-27)}` : w, 4, top + i * rowH + 15);
  });
  const index = Object.fromEntries(workers.map((w, i) => [w, i]));
  for (const r of rows) {
    ctx.fillStyle = COLORS[r[4]] || COLORS.pending;
    const x1 = x(r[5]);
    ctx.fillRect(x1, top + index[r[3]] * rowH + 3, Math.max(1.5, x(r[6]) - x1), rowH - 6);
  }
  const legend = el('div', { class: 'legend' },
    ['succeeded', 'running', 'failed', 'lost', 'drained', 'fenced', 'cancelled'].map((s) => {
      const swatch = el('i');
      swatch.style.background = COLORS[s];
      return el('span', {}, swatch, s);
    }));
  const note = timeline.coalesced
    ? el('p', { class: 'muted', 'data-testid': 'gantt-note' },
      `${timeline.attempts.toLocaleString()} attempts, drawn as ${rows.length.toLocaleString()} bars: touching bars of one worker and state are merged`)
    : null;
  return el('div', {}, canvas, legend, note);
}

function stepProgress(s) {
  const bar = el('div', { class: 'progress', title: `${s.succeeded + s.cached}/${s.tasks}` });
  for (const k of ['succeeded', 'cached', 'running', 'failed', 'cancelled']) {
    if (!s[k]) continue;
    const part = el('i', { class: k });
    part.style.width = `${(100 * s[k]) / Math.max(1, s.tasks)}%`;
    bar.append(part);
  }
  return bar;
}

async function taskDetail(runId, step, index, panel) {
  const t = await api('GET', `/api/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(step)}/${index}`);
  const logBox = el('pre', { class: 'log', 'data-testid': 'log' }, 'loading…');
  const logUrl = (attempt) => `/api/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(step)}/${index}/log?attempt=${attempt}`;
  let following = 0; // which showLog call is following; a newer one (or leaving the page) stops it
  const showLog = async (attempt) => {
    const me = ++following;
    try {
      const log = await api('GET', `${logUrl(attempt)}&tail=262144`);
      logBox.textContent = (log.offset > 0 ? `… (${bytes(log.offset)} earlier)\n` : '') + (log.text || (log.live ? '' : '(empty)'));
      logBox.dataset.live = log.live ? 'true' : 'false';
      // A running attempt's log (on any worker) grows: fetch what was added every 2 s.
      let end = log.end;
      let live = log.live;
      while (live && me === following && logBox.isConnected) {
        await new Promise((r) => setTimeout(r, 2000));
        if (me !== following || !logBox.isConnected) return;
        const more = await api('GET', `${logUrl(attempt)}&offset=${end}`);
        if (more.text) logBox.textContent += more.text;
        end = more.end;
        live = more.live;
        logBox.dataset.live = live ? 'true' : 'false';
      }
    } catch (err) {
      logBox.textContent = String(err.message);
    }
  };
  const attempts = t.attempt_history.map((a) => el('tr', { class: 'clickable', onclick: () => showLog(a.attempt) },
    el('td', {}, a.attempt), el('td', {}, badge(a.state)), el('td', {}, a.failure_class),
    el('td', {}, a.worker), el('td', {}, when(a.started_at)),
    el('td', {}, a.exit_code === null ? '' : a.exit_code), el('td', {}, a.cpu_seconds.toFixed(2)),
    el('td', {}, bytes(a.max_rss_kb * 1024)), el('td', { class: 'wrap' }, a.error)));
  panel.replaceChildren(
    el('h2', {}, `Task ${step}[${index}]`),
    el('div', { class: 'card', 'data-testid': 'task-detail' },
       el('div', { class: 'row' }, badge(t.state), el('span', { class: 'muted' }, `queue ${t.queue}`),
          el('span', { class: 'muted' }, `retries used ${t.retries_used}, infrastructure failures ${t.infra_failures}`),
          t.error ? el('span', { class: 'error' }, t.error) : null),
       el('table', { 'data-testid': 'attempts' },
          el('thead', {}, el('tr', {}, ['#', 'State', 'Reason', 'Worker', 'Started', 'Exit', 'CPU s', 'Peak mem', 'Error'].map((h) => el('th', {}, h)))),
          el('tbody', {}, attempts)),
       logBox));
  if (t.attempt_history.length) await showLog(t.attempt_history[t.attempt_history.length - 1].attempt);
  else logBox.textContent = 'not started yet';
}

async function runPage(id) {
  const state = { step: '', taskState: '', offset: 0 };
  const header = el('div');
  const dagBox = el('div', { class: 'card' });
  const stepsBox = el('div', { class: 'card' });
  const ganttBox = el('div', { class: 'card' });
  const tasksBox = el('div', { class: 'card' });
  const costBox = el('div', { class: 'card' });
  const detail = el('div');
  const stepSelect = el('select', { 'data-testid': 'step-filter', onchange: () => { state.step = stepSelect.value; state.offset = 0; loadTasks(); } });
  const stateSelect = el('select', { 'data-testid': 'state-filter', onchange: () => { state.taskState = stateSelect.value; state.offset = 0; loadTasks(); } },
    ['', 'pending', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => el('option', { value: s }, s || 'any state')));

  const loadTasks = async () => {
    const q = new URLSearchParams({ limit: 100, offset: state.offset });
    if (state.step) q.set('step', state.step);
    if (state.taskState) q.set('state', state.taskState);
    const data = await api('GET', `/api/runs/${encodeURIComponent(id)}/tasks?${q}`);
    const rows = data.items.map((t) => el('tr', { class: 'clickable', 'data-task': `${t.step}/${t.index}`,
                                                  onclick: () => taskDetail(id, t.step, t.index, detail).catch(fail) },
      el('td', {}, t.step), el('td', {}, t.index), el('td', {}, badge(t.state)), el('td', {}, t.attempts),
      el('td', {}, t.exit_code === null ? '' : t.exit_code), el('td', {}, t.worker),
      el('td', { class: 'wrap muted' }, t.error)));
    tasksBox.replaceChildren(
      el('div', { class: 'row' }, stepSelect, stateSelect),
      el('table', { 'data-testid': 'tasks' },
         el('thead', {}, el('tr', {}, ['Step', 'Index', 'State', 'Attempts', 'Exit', 'Worker', 'Error'].map((h) => el('th', {}, h)))),
         el('tbody', {}, rows)),
      el('div', { class: 'pager' },
         el('button', { disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - 100); loadTasks(); } }, 'Previous'),
         el('span', { class: 'muted' }, `${state.offset + 1}–${state.offset + data.items.length}`),
         el('button', { disabled: data.next_offset === null, onclick: () => { state.offset = data.next_offset; loadTasks(); } }, 'Next')));
  };

  const load = async () => {
    const [run, timeline] = await Promise.all([
      api('GET', `/api/runs/${encodeURIComponent(id)}`),
      api('GET', `/api/runs/${encodeURIComponent(id)}/timeline`)]);
    const act = (verb, label, cls, confirmText) => el('button', { class: cls, 'data-testid': verb, onclick: async () => {
      if (confirmText && !window.confirm(confirmText)) return;
      try { await api('POST', `/api/runs/${encodeURIComponent(id)}/${verb}`, {}); await load(); await loadTasks(); } catch (err) { window.alert(err.message); }
    } }, label);
    header.replaceChildren(
      el('div', { class: 'row' }, el('h1', {}, `Run ${run.id}`), badge(run.state), el('span', { class: 'spacer' }),
         run.state === 'running' ? act('cancel', 'Cancel run', 'danger', `Cancel run ${run.id}?`) : null,
         run.state === 'failed' ? act('retry', 'Retry failed tasks', 'primary') : null,
         run.state === 'failed' || run.state === 'cancelled' ? act('resume', 'Resume', '') : null),
      el('div', { class: 'card facts', 'data-testid': 'run-facts' },
         el('div', {}, el('span', {}, 'Pipeline'), run.pipeline),
         el('div', {}, el('span', {}, 'Created'), when(run.created_at)),
         el('div', {}, el('span', {}, 'Duration'), duration(run.elapsed_ms)),
         el('div', {}, el('span', {}, 'Root'), run.root),
         run.bundle ? el('div', { 'data-testid': 'run-bundle', title: run.bundle }, el('span', {}, 'Code bundle'), run.bundle.slice(0, 12)) : null,
         run.error ? el('div', { class: 'error' }, el('span', {}, 'Error'), run.error) : null));
    dagBox.replaceChildren(drawDag(run.steps));
    stepsBox.replaceChildren(el('table', { 'data-testid': 'steps' },
      el('thead', {}, el('tr', {}, ['Step', 'State', 'Progress', 'Done', 'Running', 'Pending', 'Failed', 'Duration'].map((h) => el('th', {}, h)))),
      el('tbody', {}, run.steps.map((s) => el('tr', { 'data-step': s.name },
        el('td', {}, s.name), el('td', {}, badge(s.state)), el('td', {}, stepProgress(s)),
        el('td', {}, `${s.succeeded + s.cached}/${s.tasks}`), el('td', {}, s.running), el('td', {}, s.pending),
        el('td', {}, s.failed), el('td', {}, duration(s.elapsed_ms)))))),
      // Pending tasks that no live or configured worker can take, and why.
      ...run.steps.filter((s) => s.unplaceable).map((s) => el('p', { class: 'error', 'data-testid': 'unplaceable' },
        `Step ${s.name}: no live or configured worker can take its pending tasks: ${s.unplaceable}`)));
    ganttBox.replaceChildren(timeline.rows.length ? drawGantt(timeline) : el('p', { class: 'muted' }, 'No task has started yet.'));
    if (stepSelect.options.length === 0) {
      stepSelect.append(el('option', { value: '' }, 'any step'), ...run.steps.map((s) => el('option', { value: s.name }, s.name)));
    }
    return run;
  };

  const loadCost = async () => {
    const c = await api('GET', `/api/runs/${encodeURIComponent(id)}/cost`);
    const usd = (v) => `$${v < 0.01 ? v.toFixed(6) : v.toFixed(4)}`;
    const barge = c.costs[0].usd;
    costBox.replaceChildren(
      el('p', { class: 'muted' }, `${c.tasks} tasks, ${c.attempts} attempts, ${duration(Math.round(c.task_seconds * 1000))} of task time, ${c.cpu_seconds.toFixed(1)} cpu-seconds, peak ${c.peak_vcpus} vCPU, peak memory ${bytes(c.peak_rss_bytes)}`),
      el('table', { 'data-testid': 'cost' },
         el('thead', {}, el('tr', {}, ['Platform', 'Cost', 'vs barge', 'Basis'].map((h) => el('th', {}, h)))),
         el('tbody', {}, c.costs.map((l, i) => el('tr', {}, el('td', {}, l.platform), el('td', {}, usd(l.usd)),
           el('td', {}, i && barge > 0 ? `${(l.usd / barge).toFixed(1)}x` : ''), el('td', { class: 'wrap muted' }, l.basis))))));
  };

  show(header, el('h2', {}, 'Graph'), dagBox, el('h2', {}, 'Steps'), stepsBox,
       el('h2', {}, 'Timeline by worker'), ganttBox, el('h2', {}, 'Tasks'), tasksBox, detail,
       el('h2', {}, 'Cost'), costBox);
  const run = await load();
  await Promise.all([loadTasks(), loadCost()]);
  if (run.state === 'running') {
    every(2000, async () => {
      if (location.hash !== `#/runs/${id}`) return;
      const r = await load();
      await loadTasks();
      if (r.state !== 'running') { clearInterval(refreshTimer); await loadCost(); }
    });
  }
}

// ---- workers and schedules ----

async function workersPage() {
  const workers = await api('GET', '/api/workers');
  const scaler = await api('GET', '/api/autoscaler');
  const workerRows = workers.map((w) => el('tr', {},
    el('td', {}, w.id), el('td', {}, w.host), el('td', {}, w.queue), el('td', {}, w.cpu),
    el('td', {}, bytes(w.memory)), el('td', {}, Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(', ')),
    el('td', {}, `${duration(w.heartbeat_age_ms)} ago`), el('td', {}, bytes(w.stats.s3_bytes_up || 0)),
    el('td', {}, bytes(w.stats.s3_bytes_down || 0)), el('td', {}, w.stats.s3_retries || 0),
    el('td', { class: w.status ? 'error' : '' }, w.status || '')));
  const workerTable = el('table', { 'data-testid': 'workers' },
    el('thead', {}, el('tr', {}, ['Worker', 'Host', 'Queue', 'CPU', 'Memory', 'Labels', 'Heartbeat', 'S3 up', 'S3 down', 'S3 retries', 'Status'].map((h) => el('th', {}, h)))),
    el('tbody', {}, workerRows));
  const scalerRows = scaler.queues.map((q) => el('tr', {}, el('td', {}, q.queue), el('td', {}, q.provider),
    el('td', {}, q.demand), el('td', {}, q.desired), el('td', {}, q.current), el('td', {}, q.min),
    el('td', {}, q.max), el('td', { class: 'error' }, q.error)));
  const scalerTable = scaler.queues.length === 0
    ? el('p', { class: 'muted' }, 'Not configured (barge serve --autoscale FILE).')
    : el('table', { 'data-testid': 'autoscaler' },
      el('thead', {}, el('tr', {}, ['Queue', 'Provider', 'Demand', 'Desired', 'Current', 'Min', 'Max', 'Error'].map((h) => el('th', {}, h)))),
      el('tbody', {}, scalerRows));
  show(el('h1', {}, 'Workers'),
       el('div', { class: 'card' }, workerTable, workers.length ? null : el('p', { class: 'muted' }, 'No live workers.')),
       el('h2', {}, 'Autoscaler'), el('div', { class: 'card' }, scalerTable));
  every(3000, () => (location.hash === '#/workers' ? workersPage() : Promise.resolve()));
}

async function schedulesPage() {
  const schedules = await api('GET', '/api/schedules');
  show(el('h1', {}, 'Schedules'),
       el('div', { class: 'card' }, el('table', { 'data-testid': 'schedules' },
         el('thead', {}, el('tr', {}, ['Name', 'Cron', 'Time zone', 'Catch-up', 'Overlap', 'Next slot', 'Enabled', ''].map((h) => el('th', {}, h)))),
         el('tbody', {}, schedules.map((s) => el('tr', { 'data-schedule': s.name },
           el('td', {}, s.name), el('td', {}, s.cron), el('td', {}, s.timezone), el('td', {}, s.catchup),
           el('td', {}, s.overlap), el('td', {}, when(s.next_slot)), el('td', {}, s.enabled ? 'yes' : 'no'),
           el('td', {}, el('button', { onclick: async () => {
             await api('PATCH', `/api/schedules/${encodeURIComponent(s.name)}`, { enabled: !s.enabled });
             await schedulesPage();
           } }, s.enabled ? 'Disable' : 'Enable')))))),
         schedules.length ? null : el('p', { class: 'muted' }, 'No schedules.')));
}

// ---- routing ----

async function route() {
  clearInterval(refreshTimer);
  const hash = location.hash || '#/runs';
  const signedIn = !!sessionStorage.getItem(TOKEN_KEY);
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !signedIn;
  if (!signedIn || hash === '#/signin') return signIn();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', hash.startsWith(`#/${a.dataset.page}`));
  try {
    const m = hash.match(/^#\/runs\/(.+)$/);
    if (m) return await runPage(decodeURIComponent(m[1]));
    if (hash === '#/workers') return await workersPage();
    if (hash === '#/schedules') return await schedulesPage();
    return await runsPage();
  } catch (err) {
    fail(err);
  }
}

document.getElementById('signout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = '#/signin';
});
window.addEventListener('hashchange', route);
route();
