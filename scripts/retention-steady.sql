-- A 30-day retention's steady state for benchmarks (PGFLOW_BENCH_SQL=scripts/retention-steady.sql, or appended
-- to sql/schema.sql for an A/B schema file): the partitions of every UTC week that a 30-day retention keeps
-- (the weeks whose end is less than 37 days ago: 5 or 6 past and current weeks, with the one the migration
-- makes 2 days ahead 5 to 7 week partitions + the default per table).
SELECT count(*) FILTER (WHERE pgflow._ensure_history_week((now() AT TIME ZONE 'UTC')::date - k)) FROM generate_series(0, 36) k
 WHERE pgflow._history_week(now() - make_interval(days => k)) + 7 > (now() - interval '30 days') AT TIME ZONE 'UTC';
