// Browser test of barge's web UI in headless Chromium (Debian's chromium, driven by the npm
// package playwright-core). Started by tests/ui_test.cc, which prepares the runs and the server:
//
//   node ui_test.cjs <playwright-core dir> <url> <token> <failed run> <running run> <big run> <out dir>
//                    <talking run> <go file>
//
// Signs in, sees the runs, opens the failed run's DAG and Gantt chart, filters to its failed task
// and reads its log, follows a running task's log until it ends (creating <go file> lets the
// task finish), sees that no worker can take the running run's tasks, cancels it, and times the page of a 10,000-task run. Saves a
// screenshot of each step into <out dir>. Exits non-zero, naming the step, on the first failure.
'use strict';

const fs = require('fs');
const path = require('path');
const [pwDir, url, token, failedRun, runningRun, bigRun, outDir, talkingRun, goFile] = process.argv.slice(2);
const { chromium } = require(path.join(pwDir, 'node_modules', 'playwright-core'));

let step = 'start';
const check = (ok, what) => {
  if (!ok) throw new Error(what);
};

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.BARGE_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const shot = (name) => page.screenshot({ path: path.join(outDir, name), fullPage: true });
  try {
    step = 'sign in with a wrong token';
    await page.goto(url);
    await page.fill('#token', 'not-the-token');
    await page.click('button[type=submit]');
    await page.getByText('That token was refused.').waitFor();

    step = 'sign in';
    await page.fill('#token', token);
    await page.click('button[type=submit]');
    await page.locator(`tr[data-run="${failedRun}"]`).waitFor();
    consoleErrors.length = 0;  // the refused token's 401 above was expected
    check(await page.locator(`tr[data-run="${runningRun}"] [data-state=running]`).count() === 1,
          'the running run is listed as running');
    await shot('01-runs.png');

    step = "the failed run's DAG and Gantt chart";
    await page.click(`tr[data-run="${failedRun}"] a`);
    await page.locator('svg[data-testid=dag] g.dag-node[data-step=work][data-state=failed]').waitFor();
    check(await page.locator('svg[data-testid=dag] g.dag-node').count() === 2, 'two steps in the DAG');
    check(await page.locator('svg[data-testid=dag] path.dag-edge').count() === 1, 'one edge in the DAG');
    const gantt = page.locator('canvas[data-testid=gantt]');
    await gantt.waitFor();
    check(await gantt.getAttribute('data-bars') === '3', 'three attempts drawn on the Gantt chart');
    await page.locator('table[data-testid=cost] tbody tr').first().waitFor();
    await shot('02-failed-run.png');

    step = "the failed task's log";
    await page.selectOption('select[data-testid=state-filter]', 'failed');
    await page.waitForFunction(
      () => document.querySelectorAll('table[data-testid=tasks] tbody tr').length === 1);
    check(await page.locator('table[data-testid=tasks] tbody tr[data-task="work/1"]').count() === 1,
          'the one failed task is work[1]');
    await page.click('table[data-testid=tasks] tbody tr[data-task="work/1"]');
    await page.locator('pre[data-testid=log]', { hasText: 'line-1-of-output' }).waitFor();
    check(await page.locator('table[data-testid=attempts]', { hasText: 'application' }).count() === 1,
          'the attempt shows its failure class');
    await shot('03-failed-task-log.png');

    step = "a running task's log, followed";
    await page.goto(`${url}/#/runs/${talkingRun}`);
    await page.locator('table[data-testid=tasks] tbody tr[data-task="t/0"]').waitFor();
    await page.click('table[data-testid=tasks] tbody tr[data-task="t/0"]');
    await page.locator('pre[data-testid=log][data-live=true]', { hasText: 'first' }).waitFor();
    fs.writeFileSync(goFile, '');
    await page.locator('pre[data-testid=log][data-live=false]', { hasText: 'second' }).waitFor();
    const followed = await page.locator('pre[data-testid=log]').textContent();
    check(followed === 'first\nsecond\n', `the followed log reads as the task wrote it (got ${JSON.stringify(followed)})`);

    step = 'a run no worker can take';
    page.on('dialog', (d) => d.accept());
    await page.goto(`${url}/#/runs/${runningRun}`);
    await page.locator('[data-testid=unplaceable]', { hasText: 'queue default: no live or configured worker serves it' }).waitFor();

    step = 'cancel a run';
    await page.click('button[data-testid=cancel]');
    await page.locator('h1 + .badge[data-state=cancelled], .row .badge[data-state=cancelled]').first().waitFor();
    await shot('04-cancelled-run.png');

    step = 'the page of a 30,000-task run';
    await page.goto(`${url}/#/runs`);
    await page.locator(`tr[data-run="${bigRun}"]`).waitFor();
    const t0 = Date.now();
    await page.goto(`${url}/#/runs/${bigRun}`);
    const bigGantt = page.locator('canvas[data-testid=gantt]');
    await bigGantt.waitFor();
    const bars = Number(await bigGantt.getAttribute('data-bars'));
    check(bars > 0 && bars <= 20000, `30,001 attempts drawn as at most 20,000 bars (got ${bars})`);
    const note = await page.locator('[data-testid=gantt-note]').textContent();
    check(note.startsWith('30,001 attempts, drawn as'), `the chart says it merged bars: ${note}`);
    await page.locator('table[data-testid=tasks] tbody tr:nth-child(100)').waitFor();
    await page.locator('table[data-testid=cost] tbody tr').first().waitFor();
    const ms = Date.now() - t0;
    console.log(`ui: the 30,000-task run page showed its DAG, Gantt chart of 30,001 attempts in ${bars} bars, first 100 tasks and cost in ${ms} ms`);
    await shot('05-big-run.png');

    step = 'workers and schedules pages';
    await page.click('a[data-page=workers]');
    await page.locator('table[data-testid=workers]').waitFor();
    await shot('06-workers.png');
    await page.click('a[data-page=schedules]');
    await page.locator('table[data-testid=schedules] tr[data-schedule=nightly]').waitFor();
    await shot('07-schedules.png');

    check(consoleErrors.length === 0, `no console errors (got: ${consoleErrors.join(' | ')})`);
    console.log('ui: all steps passed');
  } catch (err) {
    await shot('failure.png').catch(() => {});
    console.error(`ui test failed at "${step}": ${err.message}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
