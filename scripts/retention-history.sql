-- A 30-day retention's history for A/B benchmarks, on any schema (main's or the partitioned one): 50,000
-- finished runs created over the past 30 days (≈ 11,700 a week; ids UUIDv7 of their creation time, so on
-- the partitioned schema they land in their weeks' partitions: apply scripts/retention-steady.sql first),
-- each with its 4 states, in a deployment of their own (no queue the benchmark claims from). Loaded with
-- triggers off, then ANALYZE. E.g. the A/B schema files of scripts/bench-drain-cpu.sh:
--   git show main:sql/schema.sql > main.sql; cat scripts/retention-history.sql >> main.sql
--   cat sql/schema.sql scripts/retention-steady.sql scripts/retention-history.sql > steady.sql
SELECT pgflow.create_deployment('history', 'dep', 'true') IS NOT NULL;
SET session_replication_role = replica;
CREATE TEMP TABLE gen AS
SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
        || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid AS id, k, t
  FROM generate_series(1, 50000) k, LATERAL (SELECT now() - interval '30 days' + k * (interval '30 days' / 50001) AS t) x;
INSERT INTO pgflow.flow_runs (id, name, flow_id, deployment_id, work_queue_id, run_count, expected_start_time, start_time,
                              end_time, total_run_time, state_type, state_name, state_timestamp, created_at)
SELECT g.id, 'history-' || g.k, d.flow_id, d.id, d.work_queue_id, 1, g.t, g.t + interval '1 s', g.t + interval '2 s', interval '1 s',
       'COMPLETED', 'Completed', g.t + interval '2 s', g.t
  FROM gen g, pgflow.deployments d WHERE d.name = 'dep' AND d.flow_id = (SELECT id FROM pgflow.flows WHERE name = 'history');
INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp")
SELECT g.id, s.type::pgflow.state_type, s.name, g.t + s.offs
  FROM gen g, (VALUES ('SCHEDULED', 'Scheduled', interval '0'), ('PENDING', 'Pending', interval '0.5 s'),
                      ('RUNNING', 'Running', interval '1 s'), ('COMPLETED', 'Completed', interval '2 s')) s(type, name, offs);
RESET session_replication_role;
DROP TABLE gen;
ANALYZE;
