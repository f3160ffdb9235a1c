// graphile-worker baseline for bench/queue.sh: N no-op jobs, concurrency C, one process.
// With BATCH > 0, its 0.17 batching is on: a local queue fetching BATCH jobs at a time and
// batched completions.
// The clock runs from the first job's start to the last job's end: the drain, without the
// runner's connection set-up (barge's bench also connects its workers before its clock starts).
// usage: node graphile.js URL N C [BATCH]   -> prints "seconds jobs_per_second"
const { run, makeWorkerUtils } = require("graphile-worker");
const [url, n, concurrency] = [process.argv[2], +process.argv[3], +process.argv[4]];
const batch = +(process.argv[5] || 0);
const preset = batch > 0
  ? { worker: { localQueue: { size: batch }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } }
  : undefined;
const quiet = { scope: () => quiet, debug() {}, info() {}, warn() {}, error: console.error };
(async () => {
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  await utils.withPgClient((c) => c.query("delete from graphile_worker._private_jobs"));
  await utils.withPgClient((c) =>
    c.query("select graphile_worker.add_job('noop', '{}') from generate_series(1, $1)", [n]));
  // Statistics for the planner, as barge takes them after inserting a step's tasks. Without
  // them, a freshly created job table drains at about half the speed (measured: ~5,000 vs
  // ~11,000 jobs/s here), which says nothing about a queue in service.
  await utils.withPgClient((c) => c.query("analyze graphile_worker._private_jobs"));
  await utils.release();
  let done = 0;
  let start = null;
  let finish;
  const all = new Promise((resolve) => (finish = resolve));
  const runner = await run({
    connectionString: url, concurrency, noHandleSignals: true, pollInterval: 50, preset,
    logger: new (require("graphile-worker").Logger)(() => () => {}),
    taskList: {
      noop: async () => {
        if (start === null) start = process.hrtime.bigint();
        if (++done === n) finish();
      },
    },
  });
  await all;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await runner.stop();
  console.log(`${secs.toFixed(3)} ${(n / secs).toFixed(0)}`);
})().catch((e) => { console.error(e); process.exit(1); });
