// pg-boss baseline for bench/queue.sh: N no-op jobs, C workers fetching batches of B.
// The clock runs from the first batch's start to the last one's end, as in graphile.js.
// usage: node pgboss.js URL N C B   -> prints "seconds jobs_per_second"
const PgBoss = require("pg-boss");
const [url, n, workers, batch] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
(async () => {
  const boss = new PgBoss({ connectionString: url, schema: "pgboss_bench", max: workers + 2 });
  boss.on("error", (e) => console.error(e));
  await boss.start();
  await boss.createQueue("noop");
  const jobs = Array.from({ length: n }, () => ({ name: "noop", data: {} }));
  for (let i = 0; i < jobs.length; i += 1000) await boss.insert(jobs.slice(i, i + 1000));
  await boss.getDb().executeSql("analyze pgboss_bench.job");  // see graphile.js
  let done = 0;
  let start = null;
  let finish;
  const all = new Promise((resolve) => (finish = resolve));
  for (let w = 0; w < workers; ++w) {
    await boss.work("noop", { batchSize: batch, pollingIntervalSeconds: 0.5 }, async (got) => {
      if (start === null) start = process.hrtime.bigint();
      done += got.length;
      if (done >= n) finish();
    });
  }
  await all;
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await boss.stop({ graceful: false, wait: false });
  console.log(`${secs.toFixed(3)} ${(n / secs).toFixed(0)}`);
})().catch((e) => { console.error(e); process.exit(1); });
