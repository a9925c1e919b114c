-- Experiment (not a migration): the drain without flow-run state events, an upper bound of what writing
-- them costs. Appended to sql/schema.sql for an A/B schema file:
--   scripts/bench-drain-cpu.sh 5 20000 sql/schema.sql <(cat sql/schema.sql scripts/no-state-events.sql)
-- The trigger on flow_run_states still fires (and still keeps its transition table) but inserts no
-- `pgflow.flow-run.<state>` rows into pgflow.events: what is measured is the rows themselves (heap, two
-- B-trees, defaults, routing into the day's partition). Automations, the event feed and the API's events
-- then miss every flow-run state: see BENCHMARKS.md "The drain's remaining cost, by part".
CREATE OR REPLACE FUNCTION pgflow._flow_run_states_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow.notify('pgflow_flow_run_states', '');
    RETURN NULL;
END $$;
