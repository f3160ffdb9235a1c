// Peer baselines for bench/submit.sh: enqueue N no-op jobs through each library's bulk API.
// The clock runs from the first batch's start to the last one's end, after connecting and
// migrating, as barge's includes its own connection but no migration (already applied).
// usage: node peers.js graphile|pgboss URL N   -> prints "seconds jobs_per_second"
const [peer, url, n] = [process.argv[2], process.argv[3], +process.argv[4]];
const kBatch = 10000;  // jobs per call
async function graphile() {
  const { makeWorkerUtils } = require("graphile-worker");
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  await utils.withPgClient((c) => c.query("delete from graphile_worker._private_jobs"));
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i += kBatch) {
    const specs = Array.from({ length: Math.min(kBatch, n - i) }, () =>
      ({ identifier: "noop", payload: {} }));
    await utils.addJobs(specs);
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await utils.release();
  return secs;
}
async function pgboss() {
  const PgBoss = require("pg-boss");
  const boss = new PgBoss({ connectionString: url, schema: "pgboss_submit" });
  boss.on("error", (e) => console.error(e));
  await boss.start();
  await boss.createQueue("noop");
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i += kBatch) {
    await boss.insert(Array.from({ length: Math.min(kBatch, n - i) }, () =>
      ({ name: "noop", data: {} })));
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await boss.stop({ graceful: false, wait: false });
  return secs;
}
(peer === "graphile" ? graphile() : pgboss())
  .then((secs) => console.log(`${secs.toFixed(3)} ${(n / secs).toFixed(0)}`))
  .catch((e) => { console.error(e); process.exit(1); });
