-- PostgreSQL alone, with no client work: barge's two statements per batch of 32 (the claim and
-- the completion, as sql_queue.cc issues them on PostgreSQL, simplified to fixed values), run
-- by pgbench against barge's own tables. bench/queue.sh reports it as the design's ceiling.
WITH c AS (SELECT run_id AS c_run, step AS c_step, idx AS c_idx FROM tasks
           WHERE state = 'pending' AND not_before <= 1 AND cpu <= 1e9 AND memory <= 0
             AND run_id = 'floor'
           ORDER BY run_id, position, idx LIMIT 32 FOR UPDATE OF tasks SKIP LOCKED)
UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = 'w' || :client_id,
                 lease_expires_at = 100, started_at = 1, finished_at = 0
FROM c WHERE tasks.run_id = c_run AND tasks.step = c_step AND tasks.idx = c_idx
RETURNING tasks.run_id, tasks.step, tasks.idx, tasks.attempt;
WITH t AS (UPDATE tasks SET state = 'succeeded', committed_attempt = attempt, exit_code = 0,
                            outputs_json = '[]', lease_owner = '', lease_expires_at = 0,
                            finished_at = 2
           WHERE lease_owner = 'w' || :client_id AND state = 'running'
           RETURNING run_id, step, idx, attempt, started_at)
INSERT INTO attempts (run_id, step, idx, attempt, worker_id, state, started_at, finished_at,
                      exit_code)
SELECT run_id, step, idx, attempt, 'w' || :client_id, 'succeeded', started_at, 2, 0 FROM t;
