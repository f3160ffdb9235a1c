-- PostgreSQL alone, with no client work and no attempt records at all: a lock and two updates
-- per task, by pgbench, batches of 32. Less than any queue that keeps attempts can do; it bounds
-- what a different statement shape could gain (bench/queue.sh prints it after floor.sql).
WITH c AS (SELECT run_id AS c_run, step AS c_step, idx AS c_idx FROM tasks
           WHERE state = 'pending' AND not_before <= 1 AND cpu <= 1e9 AND memory <= 0
             AND run_id = 'minimal'
           ORDER BY run_id, position, idx LIMIT 32 FOR UPDATE OF tasks SKIP LOCKED)
UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = 'm' || :client_id,
                 lease_expires_at = 100, started_at = 1, finished_at = 0
FROM c WHERE tasks.run_id = c_run AND tasks.step = c_step AND tasks.idx = c_idx
RETURNING tasks.run_id, tasks.step, tasks.idx, tasks.attempt;
UPDATE tasks SET state = 'succeeded', committed_attempt = attempt, exit_code = 0,
                 outputs_json = '[]', lease_owner = '', lease_expires_at = 0, finished_at = 2
WHERE lease_owner = 'm' || :client_id AND state = 'running';
