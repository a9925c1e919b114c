-- A 30-day retention's steady state for benchmarks (PGFLOW_BENCH_SQL=scripts/retention-steady.sql): the 30 past
-- days' partitions of the six history tables (with those the migration makes: 35 day partitions + the default).
SELECT count(*) FILTER (WHERE pgflow._ensure_history_day((now() AT TIME ZONE 'UTC')::date - k)) FROM generate_series(1, 31) k;
