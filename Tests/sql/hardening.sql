-- Hardening (0003): numbers must be finite and in bounds, parameters bounded in size, schedules
-- valid for the scheduler, agents known, names visible; every refusal is 22023 (P0002 for an unknown
-- agent) and writes nothing. Rows that would once have poisoned the engine (NaN delays, impossible
-- timestamps) no longer block a batch or the reaper, and runs whose agent row is gone are reaped.
BEGIN;
SELECT plan(65);

-- err(sql): 'SQLSTATE: message' when sql raises, 'no error' if it runs
CREATE FUNCTION pg_temp.err(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_state text; v_msg text;
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
    RETURN v_state || ': ' || v_msg;
END $$;
-- code(sql): just the SQLSTATE ('none' if it runs)
CREATE FUNCTION pg_temp.code(p_sql text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN e = 'no error' THEN 'none' ELSE split_part(e, ':', 1) END FROM pg_temp.err(p_sql) e
$$;
-- counts of everything a refused call could have written
CREATE FUNCTION pg_temp.counts() RETURNS bigint[] LANGUAGE sql AS $$
    SELECT ARRAY[(SELECT count(*) FROM pgflow.flows), (SELECT count(*) FROM pgflow.deployments),
                 (SELECT count(*) FROM pgflow.deployment_schedules), (SELECT count(*) FROM pgflow.flow_runs),
                 (SELECT count(*) FROM pgflow.flow_run_states), (SELECT count(*) FROM pgflow.task_runs),
                 (SELECT count(*) FROM pgflow.agents), (SELECT count(*) FROM pgflow.concurrency_limits),
                 (SELECT count(*) FROM pgflow.work_queues), (SELECT count(*) FROM pgflow.concurrency_slots)]
$$;

\set t0 '''2030-01-01 00:00:00+00'''
SELECT pgflow.create_deployment('hd', 'dep', './h.sh', p_now => :t0);
SELECT pgflow.create_deployment('hd', 'big', './b.sh', p_parameters => jsonb_build_object('pad', repeat('x', 600000)), p_now => :t0);
SELECT pgflow.create_deployment_schedule('hd/dep', 'interval', '1 hour', p_now => :t0) AS sched \gset
SELECT pgflow.create_concurrency_limit('db', 2, p_now => :t0);
SELECT pgflow.register_agent('agent', ARRAY['default'], :t0) AS agent \gset
SELECT pgflow.run_deployment('hd/dep', p_now => :t0) AS run \gset
SELECT pgflow.create_flow_run('adhoc', p_now => :t0) AS adhoc \gset
SELECT pgflow.create_task_run(:'adhoc', 'extract', p_now => :t0) AS task \gset
SELECT pg_temp.counts() AS before \gset

-- numbers: NaN, ±Infinity, huge values
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_retry_delays => '{NaN}')$$), '22023', 'a NaN retry delay');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_retry_delays => '{Infinity}')$$), '22023', 'an infinite retry delay');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_retry_delays => '{1e300}')$$), '22023', 'a retry delay of 1e300 s');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_retry_backoff => 'list', p_retry_delays => '{1,NaN}')$$), '22023', 'a NaN in a list of delays');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_retry_jitter => 'NaN')$$), '22023', 'a NaN jitter');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_retry_jitter => 'Infinity')$$), '22023', 'an infinite jitter');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_retries => 10001)$$), '22023', 'too many retries');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_timeout_seconds => 'NaN')$$),
          '22023: pgflow: a deployment timeout must be a finite number above 0 and at most 31536000, got NaN', 'a NaN timeout');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_timeout_seconds => 'Infinity')$$), '22023', 'an infinite timeout');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_timeout_seconds => 1e17)$$), '22023', 'a timeout of 1e17 s');
SELECT is(pg_temp.code($$SELECT pgflow.create_flow_run('x', p_retry_delays => '{NaN}')$$), '22023', 'ad-hoc runs: a NaN retry delay');
SELECT is(pg_temp.code($$SELECT pgflow.create_task_run('$$ || :'adhoc' || $$', 'x', p_retry_delays => '{-Infinity}')$$), '22023', 'task runs: a -Infinity retry delay');
SELECT is(pg_temp.code($$SELECT pgflow.create_task_run('$$ || :'adhoc' || $$', 'x', p_cache_expiration => '1000 years')$$), '22023', 'task runs: a cache expiration of 1000 years');
SELECT is(pg_temp.code($$SELECT pgflow.create_work_queue('q', 2000000)$$), '22023', 'a priority above 1,000,000');
SELECT is(pg_temp.code($$SELECT pgflow.create_concurrency_limit('x', 2000000)$$), '22023', 'a limit above 1,000,000');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', p_concurrency_limit => 2000000)$$), '22023', 'a deployment limit above 1,000,000');
SELECT is(pg_temp.code($$SELECT pgflow.acquire_concurrency_slots(ARRAY['db'], p_lease => '30 days')$$), '22023', 'a lease of 30 days');
SELECT is(pg_temp.code($$SELECT pgflow.renew_concurrency_lease(gen_random_uuid(), '-1 second')$$), '22023', 'renewing for a negative time');
SELECT is(pg_temp.code($$SELECT * FROM pgflow.claim_flow_runs('$$ || :'agent' || $$', NULL, 100000)$$), '22023', 'claiming 100,000 runs at once');
SELECT is(pg_temp.code($$SELECT pgflow.reap_crashed_runs('30 days')$$), '22023', 'a heartbeat timeout of 30 days');
SELECT is(pg_temp.code($$SELECT pgflow.mark_late_runs(NULL)$$), '22023', 'a NULL late threshold');
SELECT is(pg_temp.code($$SELECT pgflow.delete_old_runs('1 day', 1000000)$$), '22023', 'a retention batch of 1,000,000');
SELECT is(pg_temp.code($$SELECT pgflow.write_logs(array_fill('$$ || :'adhoc' || $$'::uuid, ARRAY[100001]), array_fill(20, ARRAY[100001]),
                                                   array_fill('x'::text, ARRAY[100001]))$$), '22023', 'a batch of 100,001 log lines');
SELECT is(pg_temp.code($$SELECT * FROM pgflow.schedule_flow_runs('$$ || :'sched' || $$', ARRAY['infinity']::timestamptz[])$$), '22023', 'an infinite schedule time');
SELECT is(pg_temp.code($$SELECT pgflow.run_deployment('hd/dep', p_scheduled_time => 'infinity')$$), '22023', 'an infinite scheduled time');

-- the backoff cannot overflow and is capped at a year, whatever a row holds
SELECT is(pgflow.retry_delay('exponential', '{1}', 0, 41), interval '8760 hours', 'exponential backoff at retry 41 is capped at one year');
SELECT is(pgflow.retry_delay('exponential', '{1}', 0, 100000), interval '8760 hours', 'exponential backoff at retry 100,000 is capped too');
SELECT is(pgflow.retry_delay('fixed', '{NaN}', 'NaN', 1), interval '8760 hours', 'a stored NaN delay gives the cap, not an error');
SELECT is(pgflow.retry_delay('exponential', '{1e300}', 1e300, 3), interval '8760 hours', 'a stored huge delay and jitter give the cap');
SELECT is(pgflow.retry_delay('list', '{10,20}', 0, 5), interval '20 seconds', 'ordinary delays are unchanged');

-- parameters: at most 1 MiB of JSON text
SELECT is(pg_temp.err($$SELECT pgflow.run_deployment('hd/dep', jsonb_build_object('pad', repeat('x', 1100000)))$$),
          '22023: pgflow: parameters are 1100011 bytes of JSON, more than the limit of 1048576 (1 MiB)', 'run parameters over 1 MiB');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'x', './x.sh', jsonb_build_object('pad', repeat('x', 1100000)))$$), '22023', 'deployment defaults over 1 MiB');
SELECT is(pg_temp.code($$SELECT pgflow.run_deployments('hd/dep', ARRAY['{}', jsonb_build_object('pad', repeat('x', 1100000))])$$), '22023', 'one of many runs over 1 MiB');
SELECT is(pg_temp.code($$SELECT pgflow.create_flow_run('x', jsonb_build_object('pad', repeat('x', 1100000)))$$), '22023', 'ad-hoc parameters over 1 MiB');
SELECT is(pg_temp.code($$SELECT pgflow.run_deployment('hd/big', jsonb_build_object('more', repeat('y', 600000)))$$), '22023', 'parameters merged over the defaults over 1 MiB');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment_schedule('hd/big', 'cron', '@daily', p_parameters => jsonb_build_object('more', repeat('y', 600000)))$$),
          '22023', 'schedule parameters merged over the defaults over 1 MiB');

-- schedules that would never fire, or that the scheduler cannot read
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment_schedule('hd/dep', 'cron', '61 * * * *')$$),
          '22023: pgflow: invalid cron expression ''61 * * * *'': minute "61" is not a value; use 0-59, lists (1,15), ranges (1-5) and steps (*/15)', 'cron minute 61');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment_schedule('hd/dep', 'cron', 'a b c d e')$$), '22023', 'cron of words');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment_schedule('hd/dep', 'cron', '0 0 L * ?')$$), '22023', 'cron syntax the scheduler does not know');
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment_schedule('hd/dep', 'rrule', 'FREQ=DAILY;BYHOUR=99')$$),
          '22023: pgflow: invalid rrule ''FREQ=DAILY;BYHOUR=99'': BYHOUR value 99 is out of range 0-23', 'RRULE BYHOUR=99');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment_schedule('hd/dep', 'rrule', 'FREQ=SECONDLY')$$), '22023', 'RRULE FREQ=SECONDLY');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment_schedule('hd/dep', 'interval', '0 seconds')$$), '22023', 'an interval of 0');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment_schedule('hd/dep', 'interval', '1 microsecond')$$), '22023', 'an interval of 1 µs');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment_schedule('hd/dep', 'cron', '@daily', 'Europe/Atlantis')$$), '22023', 'an unknown time zone');

-- unknown agents
SELECT is(pg_temp.code($$SELECT pgflow.set_flow_run_state('$$ || :'run' || $$', 'RUNNING', p_agent_id => gen_random_uuid())$$), 'P0002', 'one transition by an unknown agent');
SELECT is(pg_temp.code($$SELECT * FROM pgflow.set_flow_run_states(ARRAY['$$ || :'run' || $$']::uuid[], ARRAY['RUNNING'], p_agent_id => gen_random_uuid())$$),
          'P0002', 'a batch by an unknown agent');

-- names: whitespace only, leading or trailing whitespace, control and invisible characters
SELECT is(pg_temp.err($$SELECT pgflow.create_deployment('   ', 'x', './x.sh')$$),
          '22023: pgflow: invalid flow name ''   '': it starts or ends with whitespace', 'a flow name of spaces');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', E'de\u200Bp', './x.sh')$$), '22023', 'a deployment name with a zero-width space');
SELECT is(pg_temp.code($$SELECT pgflow.create_deployment('hd', 'dep2', './x.sh', p_tags => ARRAY[E'etl\u200D'])$$), '22023', 'a tag with a zero-width joiner');
SELECT is(pg_temp.code($$SELECT pgflow.run_deployment('hd/dep', p_tags => ARRAY[E'\u00A0etl'])$$), '22023', 'a tag with a leading no-break space');
SELECT is(pg_temp.code($$SELECT pgflow.register_agent(E'agent\t', ARRAY['default'])$$), '22023', 'an agent name ending in a tab');
SELECT is(pg_temp.code($$SELECT pgflow.create_concurrency_limit(' db', 1)$$), '22023', 'a limit name with a leading space');
SELECT is(pg_temp.code($$SELECT pgflow.create_concurrency_limit(E'tag:\u202Eevil', 1)$$), '22023', 'a tag limit with a right-to-left override');
SELECT is(pg_temp.code($$SELECT pgflow.run_deployment('hd/dep', p_flow_run_name => E'run\n2')$$), '22023', 'a flow run name with a newline');
SELECT is(pg_temp.code($$SELECT pgflow.create_task_run('$$ || :'adhoc' || $$', E'\uFEFFextract')$$), '22023', 'a task key with a BOM');
SELECT is(pg_temp.code($$SELECT pgflow.create_flow_run(E'flow\u0007')$$), '22023', 'a flow name with a bell');

SELECT is(pg_temp.counts(), :'before'::bigint[], 'no refused call wrote anything');

-- rows written before 0003 no longer poison the engine. A run with a NaN delay retries (capped):
SELECT pgflow.create_deployment('hd', 'retry', './r.sh', p_retries => 1, p_now => :t0);
SELECT pgflow.run_deployment('hd/retry', p_now => :t0) AS nan_run \gset
SELECT pgflow.run_deployment('hd/dep', p_now => :t0) AS healthy \gset
SELECT pgflow.run_deployment('hd/dep', p_now => :t0) AS poisoned \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true, :t0);
UPDATE pgflow.flow_runs SET retry_delays = '{NaN}' WHERE id = :'nan_run';
SELECT results_eq($$SELECT status, state_name, next_scheduled_start FROM pgflow.set_flow_run_state('$$ || :'nan_run' || $$', 'FAILED',
                     p_agent_id => '$$ || :'agent' || $$', p_now => '2030-01-01 00:01:00+00')$$,
                  $$VALUES ('REDIRECTED', 'AwaitingRetry', '2031-01-01 00:01:00+00'::timestamptz)$$, 'a NaN delay retries after the one-year cap');

-- a failure whose retry cannot be scheduled (its time would pass the end of the calendar) ends Failed
SELECT pgflow.create_deployment('hd', 'far', './f.sh', p_retries => 1, p_retry_delays => '{31536000}', p_now => :t0);
SELECT pgflow.run_deployment('hd/far', p_now => :t0) AS far_run \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'agent', NULL, 10, true, :t0);
SET LOCAL client_min_messages = error;
SELECT results_eq($$SELECT status, state_name, reason FROM pgflow.set_flow_run_state('$$ || :'far_run' || $$', 'FAILED',
                     p_agent_id => '$$ || :'agent' || $$', p_now => '294276-06-01')$$,
                  $$VALUES ('ACCEPTED', 'Failed', 'no retry: applying the retry policy failed (22008: timestamp out of range)')$$,
                  'a failure whose retry cannot be scheduled is written Failed, without the retry, and says why');

-- a run whose transition raises (an impossible stored time) is rejected; the healthy one is written
UPDATE pgflow.flow_runs SET state_timestamp = '-infinity' WHERE id = :'poisoned';
SET LOCAL client_min_messages = error;
SELECT results_eq($$SELECT run_id, status, state_name, coalesce(reason LIKE 'the transition failed (22008:%', false)
                      FROM pgflow.set_flow_run_states(ARRAY['$$ || :'healthy' || $$', '$$ || :'poisoned' || $$']::uuid[],
                                                      ARRAY['COMPLETED', 'COMPLETED'], p_agent_id => '$$ || :'agent' || $$')$$,
                  $$VALUES ('$$ || :'healthy' || $$'::uuid, 'ACCEPTED', 'Completed', false),
                           ('$$ || :'poisoned' || $$'::uuid, 'REJECTED', 'Running', true)$$,
                  'a batch with a poisoned run writes the healthy one and rejects the other with the reason');
SELECT is((SELECT state_name FROM pgflow.flow_runs WHERE id = :'healthy'), 'Completed', 'the healthy run is Completed');
SELECT is((SELECT count(*)::integer FROM pgflow.logs WHERE flow_run_id = :'poisoned' AND name = 'pgflow.engine' AND level = 40), 1,
          'the failure is logged on the run');

-- the reaper: a dead agent's poisoned run never keeps its healthy runs (or other agents' runs) alive
SELECT pgflow.run_deployment('hd/dep', p_now => :t0) AS other \gset
SELECT pgflow.register_agent('ghost', ARRAY['default'], :t0) AS ghost \gset
SELECT count(*) FROM pgflow.claim_flow_runs(:'ghost', NULL, 1, true, :t0);
DELETE FROM pgflow.agents WHERE id = :'ghost';
SELECT pgflow.create_flow_run('local', p_state_type => 'RUNNING', p_now => :t0) AS local_run \gset
SELECT is(pgflow.reap_crashed_runs('60 seconds', :t0::timestamptz + '1 hour'), 2,
          'the reaper ends the dead agent''s healthy run and the run whose agent row is gone');
SELECT results_eq($$SELECT id, state_name FROM pgflow.flow_runs WHERE id IN ('$$ || :'poisoned' || $$', '$$ || :'other' || $$', '$$ || :'local_run' || $$') ORDER BY id = '$$ || :'local_run' || $$', id = '$$ || :'other' || $$'$$,
                  $$VALUES ('$$ || :'poisoned' || $$'::uuid, 'Running'), ('$$ || :'other' || $$'::uuid, 'Crashed'), ('$$ || :'local_run' || $$'::uuid, 'Running')$$,
                  'the poisoned run stays (logged), the orphaned run crashed, a run without an agent is left alone');
SELECT is((SELECT state_message FROM pgflow.flow_runs WHERE id = :'other'), 'its agent no longer exists', 'the orphan''s crash says why');

SELECT * FROM finish();
ROLLBACK;
