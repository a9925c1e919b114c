-- 0003: hardening. Every value a caller passes is checked (finite numbers in documented ranges, names
-- without invisible characters, parameters of a bounded size, schedules the scheduler can evaluate,
-- agents that exist); retry backoff can no longer overflow; one bad run never blocks a batch of
-- transitions or a reaper pass; least privilege with five roles (pgflow_agent, pgflow_scheduler,
-- pgflow_api, pgflow_reader, pgflow_admin) and SECURITY DEFINER API functions with a pinned
-- search_path. The bounds are listed in docs/sql-api.md ("Bounds"), the roles in docs/security.md.

-- ============================================================================================
-- Bounds and shared checks
-- ============================================================================================
-- The bounds, in one place (docs/sql-api.md lists them).
CREATE FUNCTION pgflow.bounds() RETURNS TABLE (name text, minimum float8, maximum float8, unit text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('name length', 1, 255, 'characters'),
           ('parameters', 0, 1048576, 'bytes of JSON text'),
           ('retries', 0, 10000, 'retries'),
           ('retry delay', 0, 31536000, 'seconds'),
           ('retry delays in a list', 1, 1000, 'delays'),
           ('retry jitter', 0, 10, 'factor'),
           ('computed retry delay', 0, 31536000, 'seconds (longer delays are capped)'),
           ('timeout', 0, 31536000, 'seconds (exclusive minimum)'),
           ('concurrency limit', 0, 1000000, 'slots'),
           ('work queue priority', 1, 1000000, 'rank'),
           ('slots per lease', 1, 1000000, 'slots'),
           ('lease', 0, 604800, 'seconds (exclusive minimum)'),
           ('schedule interval', 1, 315576000, 'seconds (10 years of 365.25 days)'),
           ('heartbeat timeout', 0, 604800, 'seconds (exclusive minimum)'),
           ('late threshold', 0, 31536000, 'seconds'),
           ('retention age', 0, 3153600000, 'seconds'),
           ('retention batch', 1, 100000, 'runs'),
           ('batch (transitions, task runs, log lines, runs enqueued, schedule times) per call', 0, 100000, 'elements'),
           ('claim size', 1, 10000, 'runs'),
           ('cache expiration', 0, 3153600000, 'seconds'),
           ('schedule batch (deployment_schedule_batch)', 1, 100000, 'schedules')
$$;

-- Characters no name may contain: control characters (Unicode Cc) and invisible format characters
-- (Cf: soft hyphen, zero-width spaces and joiners, direction marks and overrides, word joiner,
-- invisible operators, BOM, interlinear annotation, tag characters).
CREATE FUNCTION pgflow._invisible_characters() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '[\u0001-\u001F\u007F-\u009F\u00AD\u0600-\u0605\u061C\u06DD\u070F\u180E\u200B-\u200F\u2028-\u202E'
        || '\u2060-\u206F\uFEFF\uFFF9-\uFFFB\U000110BD\U000110CD\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A'
        || '\U000E0001\U000E0020-\U000E007F]'
$$;

-- Spaces of any kind (for leading and trailing whitespace).
CREATE FUNCTION pgflow._space_characters() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '[[:space:]\u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]'
$$;

-- Checks a user-chosen name (flows, deployments, work queues, limits, agents, tags, runs, task keys):
-- 1 to 255 characters, no leading or trailing whitespace (so none made of whitespace only), no control
-- or invisible format characters. Returns the name; raises 22023 naming what it is.
CREATE FUNCTION pgflow._check_name(p_name text, p_what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_reason text;
BEGIN
    IF p_name IS NULL OR p_name = '' THEN
        v_reason := 'it is empty';
    ELSIF char_length(p_name) > 255 THEN
        v_reason := format('it has %s characters, more than 255', char_length(p_name));
    ELSIF p_name ~ ('^' || pgflow._space_characters()) OR p_name ~ (pgflow._space_characters() || '$') THEN
        v_reason := 'it starts or ends with whitespace';
    ELSIF p_name ~ pgflow._invisible_characters() THEN
        v_reason := 'it contains a control or invisible character';
    END IF;
    IF v_reason IS NOT NULL THEN
        RAISE EXCEPTION 'pgflow: invalid % %: %', p_what, coalesce(quote_literal(p_name), 'NULL'), v_reason
            USING ERRCODE = '22023',
                  HINT = 'use 1 to 255 visible characters, without leading or trailing whitespace';
    END IF;
    RETURN p_name;
END $$;

-- Checks a number: finite (not NaN or ±Infinity) and within [p_min, p_max]. NULL passes (callers
-- that need a value check that). Returns the number; raises 22023.
CREATE FUNCTION pgflow._check_number(p_value float8, p_what text, p_min float8, p_max float8,
                                     p_min_exclusive boolean DEFAULT false) RETURNS float8
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NOT NULL AND (p_value IN ('NaN', 'Infinity', '-Infinity') OR p_value > p_max
                                OR p_value < p_min OR (p_min_exclusive AND p_value = p_min)) THEN
        RAISE EXCEPTION 'pgflow: % must be a finite number % % and at most %, got %', p_what,
                        CASE WHEN p_min_exclusive THEN 'above' ELSE 'of at least' END, p_min, p_max, p_value
            USING ERRCODE = '22023', HINT = 'docs/sql-api.md lists the bounds (SELECT * FROM pgflow.bounds())';
    END IF;
    RETURN p_value;
END $$;

-- Checks an interval: within [p_min, p_max] seconds (months count as 30 days, as extract(epoch) does).
CREATE FUNCTION pgflow._check_interval(p_value interval, p_what text, p_min float8, p_max float8,
                                       p_min_exclusive boolean DEFAULT false) RETURNS interval
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION 'pgflow: % must not be NULL', p_what
            USING ERRCODE = '22023', HINT = 'docs/sql-api.md lists the bounds (SELECT * FROM pgflow.bounds())';
    END IF;
    PERFORM pgflow._check_number(extract(epoch FROM p_value)::float8, p_what || ' (in seconds)', p_min, p_max, p_min_exclusive);
    RETURN p_value;
END $$;

-- Checks a time a run is scheduled for: finite (not 'infinity'). NULL passes.
CREATE FUNCTION pgflow._check_time(p_value timestamptz, p_what text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_value IS NOT NULL AND NOT isfinite(p_value) THEN
        RAISE EXCEPTION 'pgflow: % must be a finite time, got %', p_what, p_value
            USING ERRCODE = '22023', HINT = 'pass a timestamp such as now() + interval ''1 hour'', or NULL';
    END IF;
    RETURN p_value;
END $$;

-- Checks the length of a batch (transitions, task runs, log lines, runs, times): at most 100,000.
CREATE FUNCTION pgflow._check_batch(p_length integer, p_what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_length > 100000 THEN
        RAISE EXCEPTION 'pgflow: % takes at most 100000 elements per call, got %', p_what, p_length
            USING ERRCODE = '22023', HINT = 'split the batch';
    END IF;
END $$;

-- Parameters: a JSON object of at most 1 MiB of JSON text (1,048,576 bytes). An agent hands a command
-- its parameters on stdin and in a file (PGFLOW_PARAMETERS_FILE), and in the PGFLOW_PARAMETERS
-- environment variable only up to 32 KiB (Linux caps one variable at 128 KiB). Replaces 0002's check;
-- every caller gets the size limit.
CREATE OR REPLACE FUNCTION pgflow._check_parameters(p_parameters jsonb, p_what text DEFAULT 'parameters') RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_size integer;
BEGIN
    IF p_parameters IS NULL OR jsonb_typeof(p_parameters) <> 'object' THEN
        RAISE EXCEPTION 'pgflow: % must be a JSON object, got %', p_what, coalesce(jsonb_typeof(p_parameters), 'NULL')
            USING ERRCODE = '22023', HINT = 'pass an object such as ''{"day": "2026-11-21"}'' (''{}'' for none)';
    END IF;
    IF p_parameters <> '{}' THEN
        v_size := octet_length(p_parameters::text);
        IF v_size > 1048576 THEN
            RAISE EXCEPTION 'pgflow: % are % bytes of JSON, more than the limit of 1048576 (1 MiB)', p_what, v_size
                USING ERRCODE = '22023',
                      HINT = 'pass large inputs by reference (a path, a URL, a row id) instead of by value';
        END IF;
    END IF;
    RETURN p_parameters;
END $$;

-- Tags: names (see _check_name), sorted and without duplicates.
CREATE OR REPLACE FUNCTION pgflow._check_tags(p_tags text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_tag text;
BEGIN
    IF p_tags IS NULL THEN
        RETURN '{}';
    END IF;
    IF array_position(p_tags, NULL) IS NOT NULL OR '' = ANY (p_tags) THEN
        RAISE EXCEPTION 'pgflow: tags must not be NULL or empty, got %', p_tags
            USING ERRCODE = '22023', HINT = 'pass tags such as ARRAY[''etl'', ''nightly'']';
    END IF;
    FOREACH v_tag IN ARRAY p_tags LOOP
        PERFORM pgflow._check_name(v_tag, 'tag');
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT t FROM unnest(p_tags) t ORDER BY t);
END $$;

-- Concurrency limits: 0 to 1,000,000 (NULL: no limit).
CREATE OR REPLACE FUNCTION pgflow._check_limit(p_limit integer, p_what text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_limit < 0 THEN
        RAISE EXCEPTION 'pgflow: % must not be negative, got %', p_what, p_limit
            USING ERRCODE = '22023', HINT = 'pass 0 or more, or NULL for no limit';
    END IF;
    PERFORM pgflow._check_number(p_limit, p_what, 0, 1000000);
    RETURN p_limit;
END $$;

-- Retry policies: retries 0..10,000; delays finite, 0..1 year each, 1..1,000 of them; jitter 0..10.
CREATE OR REPLACE FUNCTION pgflow._check_retry_policy(p_retries integer, p_backoff text, p_delays float8[], p_jitter float8)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_retries IS NULL OR p_retries < 0 THEN
        RAISE EXCEPTION 'pgflow: retries must be 0 or more, got %', coalesce(p_retries::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass how many times a failed run runs again (0 for never)';
    END IF;
    PERFORM pgflow._check_number(p_retries, 'retries', 0, 10000);
    IF p_backoff IS NULL OR p_backoff NOT IN ('fixed', 'list', 'exponential') THEN
        RAISE EXCEPTION 'pgflow: invalid retry backoff %', coalesce(quote_literal(p_backoff), 'NULL')
            USING ERRCODE = '22023', HINT = 'use ''fixed'', ''list'' or ''exponential''';
    END IF;
    IF p_delays IS NULL OR cardinality(p_delays) = 0 OR array_position(p_delays, NULL) IS NOT NULL
       OR NOT 0 <= ALL (p_delays) OR (p_backoff <> 'list' AND cardinality(p_delays) <> 1) THEN
        RAISE EXCEPTION 'pgflow: invalid retry delays % for backoff %', coalesce(p_delays::text, 'NULL'), p_backoff
            USING ERRCODE = '22023',
                  HINT = 'fixed and exponential take one delay in seconds (''{10}''), list one or more (''{1,10,60}''), none negative';
    END IF;
    IF cardinality(p_delays) > 1000 THEN
        RAISE EXCEPTION 'pgflow: a retry policy takes at most 1000 delays, got %', cardinality(p_delays)
            USING ERRCODE = '22023', HINT = 'the last delay of a list repeats for the retries after it';
    END IF;
    PERFORM pgflow._check_number(d, 'a retry delay', 0, 31536000) FROM unnest(p_delays) d;
    IF p_jitter IS NULL OR p_jitter < 0 THEN
        RAISE EXCEPTION 'pgflow: retry jitter must be 0 or more, got %', coalesce(p_jitter::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass a factor such as 0.2 (delays grow by up to 20 %%), or 0';
    END IF;
    PERFORM pgflow._check_number(p_jitter, 'retry jitter', 0, 10);
END $$;

-- The delay before retry number p_retry (1 = the first retry) under a retry policy, capped at one
-- year (31,536,000 s). It never raises, whatever is stored: a NaN, infinite or huge delay or jitter
-- (rows written before 0003) gives the cap, a negative one 0, and exponential backoff stops doubling
-- once it passes the cap.
CREATE OR REPLACE FUNCTION pgflow.retry_delay(p_backoff text, p_delays float8[], p_jitter float8, p_retry integer)
RETURNS interval
LANGUAGE sql VOLATILE AS $$
    SELECT make_interval(secs => least(greatest(b.base * (1 + least(greatest(p_jitter, 0), 10) * random()), 0), 31536000))
      FROM (SELECT CASE p_backoff
                       WHEN 'exponential' THEN d.first * power(2::float8, least(greatest(p_retry, 1) - 1, 990))
                       WHEN 'list' THEN least(greatest(p_delays[least(greatest(p_retry, 1), cardinality(p_delays))], 0), 31536000)
                       ELSE d.first
                   END AS base
              FROM (SELECT least(greatest(p_delays[1], 0), 31536000) AS first) d) b
$$;

-- ============================================================================================
-- Schedule validation: exactly what the scheduler's parsers accept (PGFlowSchedule's CronSchedule
-- and RRuleParser; Tests/PGFlowClientTests/ScheduleValidationAgreementTests.swift runs one corpus
-- through both), plus a minimum interval of 1 second and a known time zone. Each _*_error function
-- returns NULL for a valid expression, else the reason.
-- ============================================================================================
-- One cron value: a number in [p_min, p_max] or, for months and weekdays, a three-letter name; NULL if neither.
CREATE FUNCTION pgflow._cron_value(p_text text, p_min integer, p_max integer, p_names text[], p_first integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_index integer;
BEGIN
    IF p_text ~ '^[0-9]+$' THEN
        IF p_text::numeric BETWEEN p_min AND p_max THEN
            RETURN p_text::integer;
        END IF;
        RETURN NULL;
    END IF;
    v_index := array_position(p_names, upper(p_text));
    RETURN v_index - 1 + p_first;
END $$;

-- One cron field (a comma-separated list of *, N, N-M, each with an optional /step).
CREATE FUNCTION pgflow._cron_field_error(p_field text, p_name text, p_min integer, p_max integer, p_names text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_allowed text := p_min || '-' || p_max
        || CASE WHEN p_names IS NULL THEN '' ELSE ' or ' || p_names[1] || '-' || p_names[cardinality(p_names)] END;
    v_first   integer := CASE WHEN p_name = 'month' THEN 1 ELSE 0 END;
    v_item    text;
    v_parts   text[];
    v_base    text;
    v_dash    integer;
    v_low     integer;
    v_high    integer;
BEGIN
    FOREACH v_item IN ARRAY string_to_array(p_field, ',') LOOP
        IF v_item = '' THEN
            RETURN format('%s has an empty list item; separate values with single commas', p_name);
        END IF;
        v_parts := string_to_array(v_item, '/');
        IF cardinality(v_parts) > 2 THEN
            RETURN format('%s "%s" has more than one /; use start-end/step', p_name, v_item);
        END IF;
        IF cardinality(v_parts) = 2 AND (v_parts[2] !~ '^\+?[0-9]+$' OR v_parts[2]::numeric < 1
                                         OR v_parts[2]::numeric > 9223372036854775807) THEN
            RETURN format('%s step "%s" must be a whole number of at least 1', p_name, v_parts[2]);
        END IF;
        v_base := v_parts[1];
        CONTINUE WHEN v_base = '*';
        v_dash := strpos(v_base, '-');
        IF v_dash > 0 THEN
            IF v_dash = 1 OR v_dash = length(v_base) THEN
                RETURN format('%s range "%s" needs a value on both sides of -; allowed: %s', p_name, v_base, v_allowed);
            END IF;
            v_low := pgflow._cron_value(left(v_base, v_dash - 1), p_min, p_max, p_names, v_first);
            v_high := pgflow._cron_value(substr(v_base, v_dash + 1), p_min, p_max, p_names, v_first);
            IF v_low IS NULL OR v_high IS NULL THEN
                RETURN format('%s range "%s" has a value out of range %s', p_name, v_base, v_allowed);
            END IF;
            IF p_name = 'day-of-week' AND v_high = 0 AND v_low > 0 THEN
                v_high := 7;
            END IF;
            IF v_low > v_high THEN
                RETURN format('%s range %s runs backwards; write it low-high within %s', p_name, v_base, v_allowed);
            END IF;
        ELSIF pgflow._cron_value(v_base, p_min, p_max, p_names, v_first) IS NULL THEN
            RETURN format('%s "%s" is not a value; use %s, lists (1,15), ranges (1-5) and steps (*/15)', p_name, v_base, v_allowed);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- A 5-field cron expression (minute hour day-of-month month day-of-week) or an alias (@hourly, …).
CREATE FUNCTION pgflow._cron_error(p_expression text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_source text := regexp_replace(coalesce(p_expression, ''), '^[[:space:]]+|[[:space:]]+$', '', 'g');
    v_fields text[];
BEGIN
    IF p_expression IS NULL THEN
        RETURN 'no expression';
    END IF;
    IF left(v_source, 1) = '@' THEN
        v_source := CASE lower(v_source)
                        WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *' WHEN '@monthly' THEN '0 0 1 * *'
                        WHEN '@weekly' THEN '0 0 * * 0' WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'
                        WHEN '@hourly' THEN '0 * * * *' END;
        IF v_source IS NULL THEN
            RETURN 'unknown alias; use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly';
        END IF;
    END IF;
    v_fields := CASE WHEN v_source = '' THEN '{}' ELSE regexp_split_to_array(v_source, '[[:space:]]+') END;
    IF cardinality(v_fields) <> 5 THEN
        RETURN format('expected 5 fields (minute hour day-of-month month day-of-week), got %s', cardinality(v_fields));
    END IF;
    RETURN coalesce(
        pgflow._cron_field_error(v_fields[1], 'minute', 0, 59, NULL),
        pgflow._cron_field_error(v_fields[2], 'hour', 0, 23, NULL),
        pgflow._cron_field_error(v_fields[3], 'day-of-month', 1, 31, NULL),
        pgflow._cron_field_error(v_fields[4], 'month', 1, 12, '{JAN,FEB,MAR,APR,MAY,JUN,JUL,AUG,SEP,OCT,NOV,DEC}'),
        pgflow._cron_field_error(v_fields[5], 'day-of-week', 0, 7, '{SUN,MON,TUE,WED,THU,FRI,SAT}'));
END $$;

-- An RRULE date (YYYYMMDD) or date-time (YYYYMMDDTHHMMSS, optional Z; a date takes no Z).
CREATE FUNCTION pgflow._rrule_date_ok(p_value text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_m text[] := regexp_match(upper(p_value), '^([0-9]{4})([0-9]{2})([0-9]{2})(T([0-9]{2})([0-9]{2})([0-9]{2}))?(Z?)$');
    v_year integer;
    v_month integer;
    v_days integer;
BEGIN
    IF v_m IS NULL OR (v_m[4] IS NULL AND v_m[8] = 'Z') THEN
        RETURN false;
    END IF;
    v_year := v_m[1]::integer;
    v_month := v_m[2]::integer;
    IF v_month NOT BETWEEN 1 AND 12 THEN
        RETURN false;
    END IF;
    v_days := CASE WHEN v_month = 2 THEN CASE WHEN v_year % 4 = 0 AND (v_year % 100 <> 0 OR v_year % 400 = 0) THEN 29 ELSE 28 END
                   WHEN v_month IN (4, 6, 9, 11) THEN 30 ELSE 31 END;
    RETURN v_m[3]::integer BETWEEN 1 AND v_days
       AND (v_m[4] IS NULL OR (v_m[5]::integer < 24 AND v_m[6]::integer < 60 AND v_m[7]::integer < 60));
END $$;

-- A comma-separated list of whole numbers (a sign allowed) in [p_min, p_max].
CREATE FUNCTION pgflow._rrule_numbers_error(p_name text, p_value text, p_min integer, p_max integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_item text;
BEGIN
    FOREACH v_item IN ARRAY string_to_array(p_value, ',') LOOP
        IF v_item !~ '^[+-]?[0-9]+$' OR length(v_item) > 19 THEN
            RETURN format('%s value "%s" is not a whole number', p_name, v_item);
        END IF;
        IF v_item::numeric NOT BETWEEN p_min AND p_max THEN
            RETURN format('%s value %s is out of range %s-%s', p_name, v_item::numeric, p_min, p_max);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

-- An RFC 5545 rule (the subset the scheduler supports), bare or as DTSTART and RRULE lines.
CREATE FUNCTION pgflow._rrule_error(p_rule text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_line   text;
    v_rule   text;
    v_start  text;
    v_param  text;
    v_item   text;
    v_name   text;
    v_value  text;
    v_seen   text[] := '{}';
    v_freq   text;
    v_ord    numeric;
    v_ords   numeric[] := '{}';
    v_colon  integer;
BEGIN
    IF p_rule IS NULL THEN
        RETURN 'no rule';
    END IF;
    FOR v_line IN SELECT btrim(l, E' \t') FROM regexp_split_to_table(p_rule, E'[\n\r\u000B\u000C\u0085\u2028\u2029]+') l LOOP
        CONTINUE WHEN v_line = '';
        IF upper(v_line) LIKE 'DTSTART%' THEN
            IF v_start IS NOT NULL THEN
                RETURN 'DTSTART is given twice';
            END IF;
            v_start := v_line;
        ELSIF upper(v_line) LIKE 'RRULE:%' OR strpos(v_line, ':') = 0 THEN
            IF v_rule IS NOT NULL THEN
                RETURN 'only one RRULE line is supported';
            END IF;
            v_rule := CASE WHEN upper(v_line) LIKE 'RRULE:%' THEN substr(v_line, 7) ELSE v_line END;
        ELSE
            RETURN format('%s lines are not supported; give a DTSTART line and an RRULE line', substring(v_line FROM '^[^:;]*'));
        END IF;
    END LOOP;
    IF v_start IS NOT NULL THEN
        v_colon := strpos(v_start, ':');
        IF v_colon = 0 THEN
            RETURN 'DTSTART needs a value, e.g. DTSTART:20260105T090000Z';
        END IF;
        FOREACH v_param IN ARRAY (string_to_array(left(v_start, v_colon - 1), ';'))[2:] LOOP
            CONTINUE WHEN v_param = '';
            v_name := upper(split_part(v_param, '=', 1));
            v_value := substr(v_param, strpos(v_param, '=') + 1);
            IF strpos(v_param, '=') > 1 AND v_value <> '' AND v_name = 'TZID' THEN
                IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = v_value) THEN
                    RETURN format('unknown time zone %s', v_value);
                END IF;
            ELSIF NOT (strpos(v_param, '=') > 1 AND v_value <> '' AND v_name = 'VALUE') THEN
                RETURN format('DTSTART parameter %s is not supported; use TZID=zone', v_param);
            END IF;
        END LOOP;
        IF NOT pgflow._rrule_date_ok(substr(v_start, v_colon + 1)) THEN
            RETURN format('DTSTART %s is not a date (20260105) or date-time (20260105T090000, 20260105T090000Z)', substr(v_start, v_colon + 1));
        END IF;
    END IF;
    IF v_rule IS NULL OR v_rule = '' THEN
        RETURN 'no rule; write FREQ=...;... (e.g. FREQ=DAILY;BYHOUR=9)';
    END IF;
    FOREACH v_item IN ARRAY string_to_array(v_rule, ';') LOOP
        CONTINUE WHEN v_item = '';
        IF strpos(v_item, '=') = 0 THEN
            RETURN format('%s is not NAME=VALUE', v_item);
        END IF;
        v_name := upper(btrim(split_part(v_item, '=', 1), E' \t'));
        v_value := upper(btrim(substr(v_item, strpos(v_item, '=') + 1), E' \t'));
        IF v_value = '' THEN
            RETURN format('%s is not NAME=VALUE', v_item);
        END IF;
        IF v_name = ANY (v_seen) THEN
            RETURN format('%s is given twice', v_name);
        END IF;
        v_seen := v_seen || v_name;
        CASE v_name
        WHEN 'FREQ' THEN
            IF v_value NOT IN ('MINUTELY', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY') THEN
                RETURN format('FREQ=%s is not one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY', v_value);
            END IF;
            v_freq := v_value;
        WHEN 'INTERVAL', 'COUNT' THEN
            IF v_value !~ '^[0-9]+$' OR v_value::numeric < 1 OR v_value::numeric > 9223372036854775807 THEN
                RETURN format('%s=%s must be a whole number of at least 1', v_name, v_value);
            END IF;
        WHEN 'UNTIL' THEN
            IF NOT pgflow._rrule_date_ok(v_value) THEN
                RETURN format('UNTIL=%s is not a date (20261231) or date-time (20261231T235959Z)', v_value);
            END IF;
        WHEN 'BYMONTH' THEN
            v_item := pgflow._rrule_numbers_error(v_name, v_value, 1, 12);
        WHEN 'BYMONTHDAY' THEN
            v_item := pgflow._rrule_numbers_error(v_name, v_value, -31, 31);
            IF v_item IS NULL AND 0 = ANY (string_to_array(v_value, ',')::numeric[]) THEN
                v_item := 'BYMONTHDAY value 0 is out of range 1-31 or -31--1';
            END IF;
        WHEN 'BYHOUR' THEN
            v_item := pgflow._rrule_numbers_error(v_name, v_value, 0, 23);
        WHEN 'BYMINUTE' THEN
            v_item := pgflow._rrule_numbers_error(v_name, v_value, 0, 59);
        WHEN 'BYDAY' THEN
            FOREACH v_param IN ARRAY string_to_array(v_value, ',') LOOP
                IF right(v_param, 2) NOT IN ('SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA') OR length(v_param) < 2
                   OR (length(v_param) > 2 AND (left(v_param, -2) !~ '^[+-]?[0-9]{1,18}$' OR left(v_param, -2)::integer = 0)) THEN
                    RETURN format('BYDAY value "%s" is not a weekday (MO, TU, WE, TH, FR, SA, SU) with an optional number (1MO, -1FR)', v_param);
                END IF;
                IF length(v_param) > 2 THEN
                    v_ords := v_ords || abs(left(v_param, -2)::numeric);
                END IF;
            END LOOP;
        WHEN 'WKST' THEN
            IF v_value NOT IN ('SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA') THEN
                RETURN format('WKST=%s is not one of MO, TU, WE, TH, FR, SA, SU', v_value);
            END IF;
        WHEN 'BYSECOND', 'BYSETPOS', 'BYWEEKNO', 'BYYEARDAY' THEN
            RETURN format('%s is not supported; supported parts: FREQ, INTERVAL, COUNT, UNTIL, BYMONTH, BYMONTHDAY, BYDAY, BYHOUR, BYMINUTE, WKST', v_name);
        ELSE
            RETURN format('unknown part %s; supported parts: FREQ, INTERVAL, COUNT, UNTIL, BYMONTH, BYMONTHDAY, BYDAY, BYHOUR, BYMINUTE, WKST', v_name);
        END CASE;
        IF v_name IN ('BYMONTH', 'BYMONTHDAY', 'BYHOUR', 'BYMINUTE') AND v_item IS NOT NULL THEN
            RETURN v_item;
        END IF;
    END LOOP;
    IF v_freq IS NULL THEN
        RETURN 'FREQ is required (MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY)';
    END IF;
    IF 'COUNT' = ANY (v_seen) AND 'UNTIL' = ANY (v_seen) THEN
        RETURN 'COUNT and UNTIL cannot both be given';
    END IF;
    IF cardinality(v_ords) > 0 THEN
        IF v_freq NOT IN ('MONTHLY', 'YEARLY') THEN
            RETURN 'BYDAY with a number (like 1MO or -1FR) needs FREQ=MONTHLY or FREQ=YEARLY';
        END IF;
        SELECT o INTO v_ord FROM unnest(v_ords) o WHERE o > CASE WHEN v_freq = 'MONTHLY' THEN 5 ELSE 53 END LIMIT 1;
        IF FOUND THEN
            RETURN format('BYDAY ordinal %s is out of range for FREQ=%s', v_ord, v_freq);
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- Checks a schedule as create_deployment_schedule will: returns NULL when it is valid, else why not.
-- p_kind 'cron', 'interval' (a PostgreSQL interval of 1 second to 10 years) or 'rrule'; p_timezone
-- an IANA name PostgreSQL knows (pg_timezone_names).
CREATE FUNCTION pgflow.schedule_error(p_kind text, p_expression text, p_timezone text DEFAULT 'UTC') RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_interval interval;
BEGIN
    IF p_timezone IS NULL OR NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_timezone) THEN
        RETURN format('unknown time zone %s', coalesce(quote_literal(p_timezone), 'NULL'));
    END IF;
    CASE p_kind
    WHEN 'cron' THEN
        RETURN pgflow._cron_error(p_expression);
    WHEN 'rrule' THEN
        RETURN pgflow._rrule_error(p_expression);
    WHEN 'interval' THEN
        BEGIN
            v_interval := p_expression::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow OR syntax_error THEN
            RETURN 'not an interval; write e.g. ''15 minutes'', ''1 hour'' or ''1 day''';
        END;
        IF v_interval IS NULL OR extract(epoch FROM v_interval) < 1 OR extract(epoch FROM v_interval) > 315576000 THEN
            RETURN 'an interval must be 1 second to 10 years';
        END IF;
        RETURN NULL;
    ELSE
        RETURN format('unknown schedule kind %s; use ''cron'', ''interval'' or ''rrule''', coalesce(quote_literal(p_kind), 'NULL'));
    END CASE;
END $$;

-- ============================================================================================
-- Configuration functions with the new checks. Where 0002's function only lacked checks at its
-- start, it is renamed _<name>_unchecked (internal, granted to no one) and the public name becomes a
-- wrapper that checks, then calls it; shorter functions are replaced whole.
-- ============================================================================================
CREATE OR REPLACE FUNCTION pgflow._flow_id(p_name text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    IF p_name IS NULL OR p_name = '' OR strpos(p_name, '/') > 0 THEN
        RAISE EXCEPTION 'pgflow: invalid flow name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'a flow name is not empty and has no ''/''';
    END IF;
    SELECT id INTO v_id FROM pgflow.flows WHERE name = p_name;
    IF v_id IS NULL THEN
        PERFORM pgflow._check_name(p_name, 'flow name');
        INSERT INTO pgflow.flows (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING RETURNING id INTO v_id;
        IF v_id IS NULL THEN
            SELECT id INTO v_id FROM pgflow.flows WHERE name = p_name;
        END IF;
    END IF;
    RETURN v_id;
END $$;

ALTER FUNCTION pgflow.create_work_queue(text, integer, integer, boolean, text, timestamptz) RENAME TO _create_work_queue_unchecked;
-- Creates a work queue, or updates it to these settings; returns its id. Priority 1 to 1,000,000.
CREATE FUNCTION pgflow.create_work_queue(
    p_name              text,
    p_priority          integer     DEFAULT 1,
    p_concurrency_limit integer     DEFAULT NULL,
    p_paused            boolean     DEFAULT false,
    p_description       text        DEFAULT NULL,
    p_now               timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    IF p_priority > 1000000 THEN
        RAISE EXCEPTION 'pgflow: work queue priority must be at most 1000000, got %', p_priority
            USING ERRCODE = '22023', HINT = '1 is served first, then 2, ...';
    END IF;
    RETURN pgflow._create_work_queue_unchecked(p_name, p_priority, p_concurrency_limit, p_paused, p_description, p_now);
END $$;

ALTER FUNCTION pgflow.create_deployment(text, text, text, jsonb, text, text[], text, text, integer, text, integer, float8[],
                                        text, float8, boolean, float8, text, timestamptz) RENAME TO _create_deployment_unchecked;
-- Creates a deployment of a flow (creating the flow if new), or updates it to these settings.
-- p_timeout_seconds: NULL (none) or a finite number of seconds above 0 and at most one year.
-- p_missed_run_policy: see 0002 ('run_all', 'latest', 'skip'; NULL: the scheduler's default).
CREATE FUNCTION pgflow.create_deployment(
    p_flow_name          text,
    p_name               text,
    p_entrypoint         text,
    p_parameters         jsonb       DEFAULT '{}',
    p_work_queue         text        DEFAULT 'default',
    p_tags               text[]      DEFAULT '{}',
    p_description        text        DEFAULT NULL,
    p_version            text        DEFAULT NULL,
    p_concurrency_limit  integer     DEFAULT NULL,
    p_collision_strategy text        DEFAULT 'ENQUEUE',
    p_retries            integer     DEFAULT 0,
    p_retry_delays       float8[]    DEFAULT '{0}',
    p_retry_backoff      text        DEFAULT 'fixed',
    p_retry_jitter       float8      DEFAULT 0,
    p_paused             boolean     DEFAULT false,
    p_timeout_seconds    float8      DEFAULT NULL,
    p_missed_run_policy  text        DEFAULT NULL,
    p_now                timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NOT NULL AND p_name <> '' AND strpos(p_name, '/') = 0 THEN
        PERFORM pgflow._check_name(p_name, 'deployment name');
    END IF;
    IF p_flow_name IS NOT NULL AND p_flow_name <> '' AND strpos(p_flow_name, '/') = 0 THEN
        PERFORM pgflow._check_name(p_flow_name, 'flow name');
    END IF;
    IF p_timeout_seconds <= 0 THEN
        RAISE EXCEPTION 'pgflow: a deployment timeout must be positive, got % seconds', p_timeout_seconds
            USING ERRCODE = '22023', HINT = 'pass NULL for no timeout';
    END IF;
    PERFORM pgflow._check_number(p_timeout_seconds, 'a deployment timeout', 0, 31536000, true);
    PERFORM pgflow._check_parameters(p_parameters, 'deployment parameters');
    PERFORM pgflow._check_tags(p_tags);
    RETURN pgflow._create_deployment_unchecked(p_flow_name, p_name, p_entrypoint, p_parameters, p_work_queue, p_tags,
        p_description, p_version, p_concurrency_limit, p_collision_strategy, p_retries, p_retry_delays, p_retry_backoff,
        p_retry_jitter, p_paused, p_timeout_seconds, p_missed_run_policy, p_now);
END $$;

-- Adds a schedule to a deployment. p_kind 'cron' (p_expression '0 6 * * *', 5 fields or an alias such
-- as '@hourly'), 'interval' (p_expression '1 hour': 1 second to 10 years, optional p_anchor_date) or
-- 'rrule' (p_expression 'FREQ=DAILY;BYHOUR=6'); pgflow.schedule_error explains a refusal. The
-- schedule's parameters merged over the deployment's must fit the parameters limit.
CREATE OR REPLACE FUNCTION pgflow.create_deployment_schedule(
    p_deployment  text,
    p_kind        text,
    p_expression  text,
    p_timezone    text        DEFAULT 'UTC',
    p_parameters  jsonb       DEFAULT '{}',
    p_active      boolean     DEFAULT true,
    p_anchor_date timestamptz DEFAULT NULL,
    p_now         timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_dep_id uuid := pgflow._deployment_id(p_deployment);
    v_error  text;
    v_id     uuid;
BEGIN
    PERFORM pgflow._check_parameters(p_parameters, 'schedule parameters');
    PERFORM pgflow._check_parameters((SELECT d.parameters || p_parameters FROM pgflow.deployments d WHERE d.id = v_dep_id),
                                     'schedule parameters merged over the deployment''s');
    IF p_timezone IS NULL OR NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_timezone) THEN
        RAISE EXCEPTION 'pgflow: unknown time zone %', coalesce(quote_literal(p_timezone), 'NULL')
            USING ERRCODE = '22023', HINT = 'use an IANA name such as ''UTC'' or ''Europe/Paris''';
    END IF;
    PERFORM pgflow._check_time(p_anchor_date, 'a schedule anchor date');
    v_error := pgflow.schedule_error(p_kind, p_expression, p_timezone);
    IF v_error IS NOT NULL THEN
        CASE p_kind
        WHEN 'cron' THEN
            RAISE EXCEPTION 'pgflow: invalid cron expression %: %', coalesce(quote_literal(p_expression), 'NULL'), v_error
                USING ERRCODE = '22023', HINT = 'use five fields: minute hour day-of-month month day-of-week, e.g. ''0 6 * * *'', or @hourly, @daily, …';
        WHEN 'interval' THEN
            RAISE EXCEPTION 'pgflow: invalid schedule interval %: %', coalesce(quote_literal(p_expression), 'NULL'), v_error
                USING ERRCODE = '22023', HINT = 'use an interval of 1 second to 10 years such as ''15 minutes'' or ''1 day''';
        WHEN 'rrule' THEN
            RAISE EXCEPTION 'pgflow: invalid rrule %: %', coalesce(quote_literal(p_expression), 'NULL'), v_error
                USING ERRCODE = '22023', HINT = 'use an RFC 5545 rule such as ''FREQ=DAILY;BYHOUR=6''';
        ELSE
            RAISE EXCEPTION 'pgflow: invalid schedule kind %', coalesce(quote_literal(p_kind), 'NULL')
                USING ERRCODE = '22023', HINT = 'use ''cron'', ''interval'' or ''rrule''';
        END CASE;
    END IF;
    INSERT INTO pgflow.deployment_schedules (deployment_id, kind, cron, "interval", rrule, anchor_date, timezone,
                                             active, parameters, created_at, updated_at)
    VALUES (v_dep_id, p_kind, CASE WHEN p_kind = 'cron' THEN btrim(p_expression) END,
            CASE WHEN p_kind = 'interval' THEN p_expression::interval END,
            CASE WHEN p_kind = 'rrule' THEN p_expression END,
            CASE WHEN p_kind = 'interval' THEN coalesce(p_anchor_date, p_now) ELSE p_anchor_date END,
            p_timezone, coalesce(p_active, true), p_parameters, p_now, p_now)
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

ALTER FUNCTION pgflow.create_concurrency_limit(text, integer, boolean, timestamptz) RENAME TO _create_concurrency_limit_unchecked;
-- Creates or changes a global limit ('db') or a tag limit ('tag:db'); returns its id. 0 to 1,000,000 slots.
CREATE FUNCTION pgflow.create_concurrency_limit(
    p_name   text,
    p_limit  integer,
    p_active boolean     DEFAULT true,
    p_now    timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NOT NULL AND p_name <> '' THEN
        PERFORM pgflow._check_name(CASE WHEN p_name LIKE 'tag:_%' THEN substr(p_name, 5) ELSE p_name END,
                                   CASE WHEN p_name LIKE 'tag:_%' THEN 'tag' ELSE 'concurrency limit name' END);
    END IF;
    RETURN pgflow._create_concurrency_limit_unchecked(p_name, p_limit, p_active, p_now);
END $$;

ALTER FUNCTION pgflow.register_agent(text, text[], timestamptz) RENAME TO _register_agent_unchecked;
-- Registers an agent (a name such as its host name, the work queues it serves); returns its id.
CREATE FUNCTION pgflow.register_agent(p_name text, p_queues text[], p_now timestamptz DEFAULT now())
RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NOT NULL AND p_name <> '' THEN
        PERFORM pgflow._check_name(p_name, 'agent name');
    END IF;
    RETURN pgflow._register_agent_unchecked(p_name, p_queues, p_now);
END $$;

-- Internal: raises P0002 for an agent id (not NULL) with no agent row.
CREATE FUNCTION pgflow._check_agent(p_agent_id uuid) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_agent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgflow.agents WHERE id = p_agent_id) THEN
        RAISE EXCEPTION 'pgflow: unknown agent %', p_agent_id
            USING ERRCODE = 'P0002', HINT = 'register with SELECT pgflow.register_agent(name, queues), or pass NULL';
    END IF;
END $$;

-- ============================================================================================
-- Enqueue, claim and task runs with the new checks
-- ============================================================================================
-- 0002's enqueue, plus: a run's parameters merged over its deployment's defaults must fit the
-- parameters limit (checked only when both are non-empty; each alone was checked by the caller).
CREATE OR REPLACE FUNCTION pgflow._enqueue_runs(
    p_deployment_id uuid, p_parameters jsonb[], p_times timestamptz[], p_tags text[], p_idempotency_keys text[],
    p_names text[], p_work_queue_id uuid, p_parent_task_run_id uuid, p_schedule_id uuid, p_now timestamptz
) RETURNS SETOF uuid
LANGUAGE sql AS $$
    WITH d AS (SELECT * FROM pgflow.deployments WHERE id = p_deployment_id),
    x AS (SELECT * FROM unnest(p_parameters, p_times, p_idempotency_keys, p_names) WITH ORDINALITY
                        AS x(params, at, key, name, ord)),
    ins AS (
        INSERT INTO pgflow.flow_runs (name, flow_id, deployment_id, work_queue_id, deployment_schedule_id, parameters,
                                      tags, idempotency_key, parent_task_run_id, retries, retry_delays, retry_backoff,
                                      retry_jitter, expected_start_time, next_scheduled_start, state_type, state_name,
                                      state_timestamp, created_at)
        SELECT coalesce(x.name, pgflow.random_run_name()), d.flow_id, d.id, coalesce(p_work_queue_id, d.work_queue_id),
               p_schedule_id,
               CASE WHEN d.parameters = '{}' OR coalesce(x.params, '{}') = '{}' THEN d.parameters || coalesce(x.params, '{}')
                    ELSE pgflow._check_parameters(d.parameters || x.params, 'parameters merged over the deployment''s') END,
               ARRAY(SELECT DISTINCT t FROM unnest(d.tags || coalesce(p_tags, '{}')) t ORDER BY t),
               x.key, p_parent_task_run_id, d.retries, d.retry_delays, d.retry_backoff, d.retry_jitter,
               coalesce(x.at, p_now), coalesce(x.at, p_now), 'SCHEDULED', 'Scheduled', p_now, p_now
          FROM x CROSS JOIN d ORDER BY x.ord
        ON CONFLICT DO NOTHING
        RETURNING id, work_queue_id, expected_start_time),
    hist AS (
        INSERT INTO pgflow.flow_run_states (flow_run_id, state_type, state_name, "timestamp", scheduled_time)
        SELECT id, 'SCHEDULED', 'Scheduled', p_now, expected_start_time FROM ins),
    q AS (
        INSERT INTO pgflow.run_queue (flow_run_id, work_queue_id, scheduled_at)
        SELECT id, work_queue_id, expected_start_time FROM ins)
    SELECT id FROM ins
$$;

ALTER FUNCTION pgflow.run_deployment(text, jsonb, timestamptz, text, text[], text, text, uuid, timestamptz) RENAME TO _run_deployment_unchecked;
-- Enqueues a run of a deployment ('flow/deployment', or a deployment name only one flow uses) and
-- returns its id. Parameters (at most 1 MiB of JSON, merged too) are merged over the deployment's
-- defaults, tags added to its tags. With an idempotency key used before for this flow, returns that run.
CREATE FUNCTION pgflow.run_deployment(
    p_name               text,
    p_parameters         jsonb       DEFAULT '{}',
    p_scheduled_time     timestamptz DEFAULT NULL,
    p_idempotency_key    text        DEFAULT NULL,
    p_tags               text[]      DEFAULT NULL,
    p_flow_run_name      text        DEFAULT NULL,
    p_work_queue         text        DEFAULT NULL,
    p_parent_task_run_id uuid        DEFAULT NULL,
    p_now                timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_parameters(p_parameters);
    PERFORM pgflow._check_time(p_scheduled_time, 'a scheduled time');
    IF p_flow_run_name IS NOT NULL THEN
        PERFORM pgflow._check_name(p_flow_run_name, 'flow run name');
    END IF;
    RETURN pgflow._run_deployment_unchecked(p_name, p_parameters, p_scheduled_time, p_idempotency_key, p_tags,
                                            p_flow_run_name, p_work_queue, p_parent_task_run_id, p_now);
END $$;

ALTER FUNCTION pgflow.run_deployments(text, jsonb[], timestamptz, text[], timestamptz) RENAME TO _run_deployments_unchecked;
-- Enqueues many runs (at most 100,000) of one deployment in one statement (one NOTIFY); returns their ids.
CREATE FUNCTION pgflow.run_deployments(
    p_name           text,
    p_parameters     jsonb[],
    p_scheduled_time timestamptz DEFAULT NULL,
    p_tags           text[]      DEFAULT NULL,
    p_now            timestamptz DEFAULT now()
) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_parameters), 'run_deployments');
    PERFORM pgflow._check_time(p_scheduled_time, 'a scheduled time');
    PERFORM pgflow._check_parameters(p) FROM unnest(p_parameters) p WHERE p IS NOT NULL AND jsonb_typeof(p) = 'object';
    RETURN QUERY SELECT * FROM pgflow._run_deployments_unchecked(p_name, p_parameters, p_scheduled_time, p_tags, p_now);
END $$;

ALTER FUNCTION pgflow.create_flow_run(text, jsonb, text, text[], uuid, text, text, integer, float8[], text, float8, uuid,
                                      timestamptz) RENAME TO _create_flow_run_unchecked;
-- Creates an ad-hoc flow run (no deployment; local mode, subflows) in PENDING, or RUNNING at once
-- (p_state_type 'RUNNING'; if a tag limit is full it waits in AwaitingConcurrencySlot instead).
-- p_agent_id: an agent whose heartbeat keeps the run alive (else the reaper never touches it).
CREATE FUNCTION pgflow.create_flow_run(
    p_flow_name          text,
    p_parameters         jsonb       DEFAULT '{}',
    p_name               text        DEFAULT NULL,
    p_tags               text[]      DEFAULT '{}',
    p_parent_task_run_id uuid        DEFAULT NULL,
    p_state_type         text        DEFAULT 'PENDING',
    p_idempotency_key    text        DEFAULT NULL,
    p_retries            integer     DEFAULT 0,
    p_retry_delays       float8[]    DEFAULT '{0}',
    p_retry_backoff      text        DEFAULT 'fixed',
    p_retry_jitter       float8      DEFAULT 0,
    p_agent_id           uuid        DEFAULT NULL,
    p_now                timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NOT NULL THEN
        PERFORM pgflow._check_name(p_name, 'flow run name');
    END IF;
    RETURN pgflow._create_flow_run_unchecked(p_flow_name, p_parameters, p_name, p_tags, p_parent_task_run_id, p_state_type,
        p_idempotency_key, p_retries, p_retry_delays, p_retry_backoff, p_retry_jitter, p_agent_id, p_now);
END $$;

ALTER FUNCTION pgflow.create_task_runs(uuid, text[], text[], text[], jsonb[], text[], text[], interval[], integer[], text[],
                                       text[], float8[], timestamptz[], boolean[], timestamptz) RENAME TO _create_task_runs_unchecked;
-- Creates task runs of a flow run (see 0002): task keys and names are names (pgflow._check_name),
-- cache expirations at most 100 years.
CREATE FUNCTION pgflow.create_task_runs(
    p_flow_run_id       uuid,
    p_task_keys         text[],
    p_dynamic_keys      text[]        DEFAULT NULL,
    p_names             text[]        DEFAULT NULL,
    p_inputs            jsonb[]       DEFAULT NULL,
    p_tags              text[]        DEFAULT NULL,
    p_cache_keys        text[]        DEFAULT NULL,
    p_cache_expirations interval[]    DEFAULT NULL,
    p_retries           integer[]     DEFAULT NULL,
    p_retry_delays      text[]        DEFAULT NULL,
    p_retry_backoffs    text[]        DEFAULT NULL,
    p_retry_jitters     float8[]      DEFAULT NULL,
    p_created_at        timestamptz[] DEFAULT NULL,
    p_cache_refresh     boolean[]     DEFAULT NULL,
    p_now               timestamptz   DEFAULT now()
) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_task_keys), 'create_task_runs');
    PERFORM pgflow._check_name(k, 'task key') FROM (SELECT DISTINCT k FROM unnest(p_task_keys) k WHERE k <> '') t;
    PERFORM pgflow._check_name(n, 'task run name') FROM (SELECT DISTINCT n FROM unnest(p_names) n WHERE n IS NOT NULL) t;
    PERFORM pgflow._check_number(extract(epoch FROM e)::float8, 'a cache expiration (in seconds)', 0, 3153600000)
       FROM unnest(p_cache_expirations) e WHERE e >= interval '0';
    RETURN QUERY SELECT * FROM pgflow._create_task_runs_unchecked(p_flow_run_id, p_task_keys, p_dynamic_keys, p_names,
        p_inputs, p_tags, p_cache_keys, p_cache_expirations, p_retries, p_retry_delays, p_retry_backoffs, p_retry_jitters,
        p_created_at, p_cache_refresh, p_now);
END $$;

ALTER FUNCTION pgflow.claim_flow_runs(uuid, text[], integer, boolean, timestamptz) RENAME TO _claim_flow_runs_unchecked;
-- Claims up to p_max (1 to 10,000) due runs for an agent (see 0002's comment on the claim), with each
-- run's deployment timeout.
CREATE FUNCTION pgflow.claim_flow_runs(
    p_agent_id uuid,
    p_queues   text[]      DEFAULT NULL,
    p_max      integer     DEFAULT 1,
    p_start    boolean     DEFAULT false,
    p_now      timestamptz DEFAULT now()
) RETURNS TABLE (
    flow_run_id         uuid,
    flow_run_name       text,
    flow_name           text,
    deployment_id       uuid,
    deployment_name     text,
    entrypoint          text,
    parameters          jsonb,
    tags                text[],
    work_queue          text,
    state_type          pgflow.state_type,
    state_name          text,
    run_count           integer,
    expected_start_time timestamptz,
    parent_task_run_id  uuid,
    timeout_seconds     float8  -- the deployment's, for the agent (NULL: none)
)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_max > 10000 THEN
        RAISE EXCEPTION 'pgflow: claim at most 10000 runs at once, not %', p_max
            USING ERRCODE = '22023', HINT = 'pass p_max => 1 to 10000';
    END IF;
    RETURN QUERY SELECT c.*, d.timeout_seconds
                   FROM pgflow._claim_flow_runs_unchecked(p_agent_id, p_queues, p_max, p_start, p_now) c
                   LEFT JOIN pgflow.deployments d ON d.id = c.deployment_id;
END $$;

-- ============================================================================================
-- Transitions that isolate failures: one run whose transition raises (a row written before 0003
-- with an impossible retry policy, say) never blocks the others. The batch is tried whole in a
-- subtransaction (the common case costs one); if it raises, each proposal is tried alone. A failure
-- proposal that raises is tried once more as final (no retry: its retry policy is what failed); a
-- proposal that still raises is returned REJECTED with the error as its reason, and logged (a WARNING
-- and a line in pgflow.logs, level 40, name 'pgflow.engine').
-- ============================================================================================
CREATE FUNCTION pgflow._transition_flow_runs_isolated(p_proposals pgflow._proposal[], p_agent_id uuid, p_now timestamptz,
                                                      p_locked boolean DEFAULT false, p_allow_retry boolean DEFAULT true)
RETURNS SETOF pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_res   pgflow.transition_result[];
    v_p     pgflow._proposal;
    v_run   pgflow.flow_runs;
    v_msg   text;
    v_state text;
BEGIN
    BEGIN
        v_res := ARRAY(SELECT t FROM pgflow._transition_flow_runs(p_proposals, p_agent_id, p_now, p_locked, p_allow_retry) t);
        RETURN QUERY SELECT * FROM unnest(v_res);
        RETURN;
    EXCEPTION WHEN OTHERS THEN
        NULL;  -- one by one below
    END;
    FOREACH v_p IN ARRAY p_proposals LOOP
        BEGIN
            v_res := ARRAY(SELECT t FROM pgflow._transition_flow_runs(ARRAY[v_p], p_agent_id, p_now, p_locked, p_allow_retry) t);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            v_res := NULL;
            IF p_allow_retry AND v_p.state_type IN ('FAILED', 'CRASHED') THEN
                BEGIN
                    v_res := ARRAY(SELECT t FROM pgflow._transition_flow_runs(ARRAY[v_p], p_agent_id, p_now, p_locked, false) t);
                    v_res[1].reason := format('no retry: applying the retry policy failed (%s: %s)', v_state, v_msg);
                EXCEPTION WHEN OTHERS THEN
                    v_res := NULL;
                END;
            END IF;
            IF v_res IS NULL THEN
                SELECT * INTO v_run FROM pgflow.flow_runs WHERE id = v_p.run_id;
                v_res := ARRAY[ROW(v_p.run_id, 'REJECTED', format('the transition failed (%s: %s)', v_state, v_msg),
                                   v_run.state_type, v_run.state_name, v_run.state_timestamp, v_run.next_scheduled_start,
                                   v_run.run_count, NULL)::pgflow.transition_result];
            END IF;
            RAISE WARNING 'pgflow: flow run %: the transition to % failed (%: %); %', v_p.run_id, v_p.state_type, v_state, v_msg,
                          CASE WHEN v_res[1].status = 'REJECTED' THEN 'rejected' ELSE 'written without a retry' END;
            INSERT INTO pgflow.logs (flow_run_id, level, name, message, "timestamp")
            VALUES (v_p.run_id, 40, 'pgflow.engine',
                    format('the transition to %s failed (%s: %s); %s', v_p.state_type, v_state, v_msg,
                           CASE WHEN v_res[1].status = 'REJECTED' THEN 'rejected' ELSE 'written without a retry' END), p_now);
        END;
        RETURN QUERY SELECT * FROM unnest(v_res);
    END LOOP;
END $$;

CREATE FUNCTION pgflow._transition_task_runs_isolated(p_proposals pgflow._proposal[], p_allow_retry boolean, p_now timestamptz,
                                                      p_timestamps timestamptz[] DEFAULT NULL)
RETURNS SETOF pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_res   pgflow.transition_result[];
    v_p     pgflow._proposal;
    v_i     integer := 0;
    v_run   pgflow.task_runs;
    v_msg   text;
    v_state text;
BEGIN
    BEGIN
        v_res := ARRAY(SELECT t FROM pgflow._transition_task_runs(p_proposals, p_allow_retry, p_now, p_timestamps) t);
        RETURN QUERY SELECT * FROM unnest(v_res);
        RETURN;
    EXCEPTION WHEN OTHERS THEN
        NULL;  -- one by one below
    END;
    FOREACH v_p IN ARRAY p_proposals LOOP
        v_i := v_i + 1;
        BEGIN
            v_res := ARRAY(SELECT t FROM pgflow._transition_task_runs(ARRAY[v_p], p_allow_retry, p_now,
                                                                      CASE WHEN p_timestamps IS NOT NULL THEN ARRAY[p_timestamps[v_i]] END) t);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            v_res := NULL;
            IF p_allow_retry AND v_p.state_type IN ('FAILED', 'CRASHED') THEN
                BEGIN
                    v_res := ARRAY(SELECT t FROM pgflow._transition_task_runs(ARRAY[v_p], false, p_now,
                                                                              CASE WHEN p_timestamps IS NOT NULL THEN ARRAY[p_timestamps[v_i]] END) t);
                    v_res[1].reason := format('no retry: applying the retry policy failed (%s: %s)', v_state, v_msg);
                EXCEPTION WHEN OTHERS THEN
                    v_res := NULL;
                END;
            END IF;
            SELECT * INTO v_run FROM pgflow.task_runs WHERE id = v_p.run_id;
            IF v_res IS NULL THEN
                v_res := ARRAY[ROW(v_p.run_id, 'REJECTED', format('the transition failed (%s: %s)', v_state, v_msg),
                                   v_run.state_type, v_run.state_name, v_run.state_timestamp, v_run.next_scheduled_start,
                                   v_run.run_count, NULL)::pgflow.transition_result];
            END IF;
            RAISE WARNING 'pgflow: task run %: the transition to % failed (%: %); %', v_p.run_id, v_p.state_type, v_state, v_msg,
                          CASE WHEN v_res[1].status = 'REJECTED' THEN 'rejected' ELSE 'written without a retry' END;
            INSERT INTO pgflow.logs (flow_run_id, task_run_id, level, name, message, "timestamp")
            VALUES (v_run.flow_run_id, v_p.run_id, 40, 'pgflow.engine',
                    format('the transition to %s failed (%s: %s); %s', v_p.state_type, v_state, v_msg,
                           CASE WHEN v_res[1].status = 'REJECTED' THEN 'rejected' ELSE 'written without a retry' END), p_now);
        END;
        RETURN QUERY SELECT * FROM unnest(v_res);
    END LOOP;
END $$;

-- Proposes a new state for a flow run (see 0002). New: p_agent_id must name a registered agent
-- (P0002 otherwise), p_scheduled_time must be finite, and a failure while applying the transition
-- is returned REJECTED with the reason instead of raising.
CREATE OR REPLACE FUNCTION pgflow.set_flow_run_state(
    p_flow_run_id      uuid,
    p_state_type       text,
    p_state_name       text        DEFAULT NULL,
    p_message          text        DEFAULT NULL,
    p_result           jsonb       DEFAULT NULL,
    p_scheduled_time   timestamptz DEFAULT NULL,
    p_pause_expires_at timestamptz DEFAULT NULL,
    p_transition_id    uuid        DEFAULT NULL,
    p_agent_id         uuid        DEFAULT NULL,
    p_process_id       text        DEFAULT NULL,
    p_now              timestamptz DEFAULT now(),
    p_allow_retry      boolean     DEFAULT true
) RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_p pgflow._proposal;
BEGIN
    v_p := (pgflow._proposals('flow_runs', ARRAY[p_flow_run_id], ARRAY[p_state_type], ARRAY[p_state_name],
                              ARRAY[p_message], ARRAY[p_result], ARRAY[p_transition_id]))[1];
    PERFORM pgflow._check_agent(p_agent_id);
    v_p.scheduled_time := pgflow._check_time(p_scheduled_time, 'a scheduled time');
    v_p.pause_expires := p_pause_expires_at;
    v_p.process_id := p_process_id;
    RETURN (SELECT t FROM pgflow._transition_flow_runs_isolated(ARRAY[v_p], p_agent_id, p_now, false, p_allow_retry) t);
END $$;

-- Many flow run transitions in one call (the agent's hot path), same rules; one result per run, in
-- order. p_agent_id must name a registered agent; one run that cannot be moved never blocks the others.
CREATE OR REPLACE FUNCTION pgflow.set_flow_run_states(
    p_run_ids        uuid[],
    p_state_types    text[],
    p_state_names    text[]      DEFAULT NULL,
    p_messages       text[]      DEFAULT NULL,
    p_results        jsonb[]     DEFAULT NULL,
    p_transition_ids uuid[]      DEFAULT NULL,
    p_agent_id       uuid        DEFAULT NULL,
    p_now            timestamptz DEFAULT now(),
    p_allow_retry    boolean     DEFAULT true
) RETURNS SETOF pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_proposals pgflow._proposal[];
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_run_ids), 'set_flow_run_states');
    v_proposals := pgflow._proposals('flow_runs', p_run_ids, p_state_types, p_state_names, p_messages, p_results, p_transition_ids);
    PERFORM pgflow._check_agent(p_agent_id);
    RETURN QUERY SELECT * FROM pgflow._transition_flow_runs_isolated(v_proposals, p_agent_id, p_now, false, p_allow_retry);
END $$;

-- Proposes a new state for a task run (see 0002); a failure while applying it is returned REJECTED.
CREATE OR REPLACE FUNCTION pgflow.set_task_run_state(
    p_task_run_id      uuid,
    p_state_type       text,
    p_state_name       text        DEFAULT NULL,
    p_message          text        DEFAULT NULL,
    p_result           jsonb       DEFAULT NULL,
    p_scheduled_time   timestamptz DEFAULT NULL,
    p_pause_expires_at timestamptz DEFAULT NULL,
    p_transition_id    uuid        DEFAULT NULL,
    p_now              timestamptz DEFAULT now(),
    p_allow_retry      boolean     DEFAULT true
) RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
DECLARE
    v_p pgflow._proposal;
BEGIN
    v_p := (pgflow._proposals('task_runs', ARRAY[p_task_run_id], ARRAY[p_state_type], ARRAY[p_state_name],
                              ARRAY[p_message], ARRAY[p_result], ARRAY[p_transition_id]))[1];
    v_p.scheduled_time := pgflow._check_time(p_scheduled_time, 'a scheduled time');
    v_p.pause_expires := p_pause_expires_at;
    RETURN (SELECT t FROM pgflow._transition_task_runs_isolated(ARRAY[v_p], p_allow_retry, p_now) t);
END $$;

-- Many task run transitions in one call (the SDK's hot path; see 0002); one run that cannot be
-- moved never blocks the others.
CREATE OR REPLACE FUNCTION pgflow.set_task_run_states(
    p_run_ids        uuid[],
    p_state_types    text[],
    p_state_names    text[]        DEFAULT NULL,
    p_messages       text[]        DEFAULT NULL,
    p_results        jsonb[]       DEFAULT NULL,
    p_transition_ids uuid[]        DEFAULT NULL,
    p_now            timestamptz   DEFAULT now(),
    p_timestamps     timestamptz[] DEFAULT NULL,
    p_allow_retry    boolean       DEFAULT true
) RETURNS SETOF pgflow.transition_result
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_run_ids), 'set_task_run_states');
    RETURN QUERY SELECT * FROM pgflow._transition_task_runs_isolated(
        pgflow._proposals('task_runs', p_run_ids, p_state_types, p_state_names, p_messages, p_results, p_transition_ids,
                          p_timestamps),
        p_allow_retry, p_now, p_timestamps);
END $$;

ALTER FUNCTION pgflow.retry_flow_run(uuid, timestamptz, timestamptz) RENAME TO _retry_flow_run_unchecked;
-- The explicit retry (see 0002); p_scheduled_time must be finite.
CREATE FUNCTION pgflow.retry_flow_run(p_flow_run_id uuid, p_scheduled_time timestamptz DEFAULT NULL,
                                      p_now timestamptz DEFAULT now())
RETURNS pgflow.transition_result
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_time(p_scheduled_time, 'a scheduled time');
    RETURN pgflow._retry_flow_run_unchecked(p_flow_run_id, p_scheduled_time, p_now);
END $$;

-- ============================================================================================
-- Agents and the reaper: failures isolated per run, and runs whose agent row is gone are reaped
-- ============================================================================================
-- Internal: ends active runs (see 0002's _end_agent_runs): Pending runs go back to the queue
-- (p_give_back) or crash, Running and Paused runs crash (a retry follows when retries are left),
-- Cancelling runs end Cancelled; Suspended runs (no process) and runs another transaction holds are
-- skipped. One run that cannot be ended never blocks the others. Returns how many runs changed.
CREATE FUNCTION pgflow._end_runs(p_run_ids uuid[], p_why text, p_give_back boolean, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_proposals pgflow._proposal[];
BEGIN
    v_proposals := ARRAY(
        SELECT ROW(r.id,
                   CASE WHEN r.state_type = 'CANCELLING' THEN 'CANCELLED'
                        WHEN r.state_type = 'PENDING' AND p_give_back THEN 'SCHEDULED'
                        ELSE 'CRASHED' END::pgflow.state_type,
                   CASE WHEN r.state_type = 'CANCELLING' THEN 'Cancelled'
                        WHEN r.state_type = 'PENDING' AND p_give_back THEN 'Scheduled'
                        ELSE 'Crashed' END,
                   p_why, NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.flow_runs r
         WHERE r.id = ANY (p_run_ids) AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
           AND r.state_name <> 'Suspended'
         ORDER BY r.id
           FOR UPDATE SKIP LOCKED);
    IF cardinality(v_proposals) = 0 THEN
        RETURN 0;
    END IF;
    RETURN (SELECT count(*)::integer FROM pgflow._transition_flow_runs_isolated(v_proposals, NULL, p_now, true) t
             WHERE t.status IN ('ACCEPTED', 'REDIRECTED'));
END $$;

-- Internal: ends the active runs of the given agents (deregistration, the reaper).
CREATE OR REPLACE FUNCTION pgflow._end_agent_runs(p_agent_ids uuid[], p_why text, p_give_back boolean, p_now timestamptz)
RETURNS integer
LANGUAGE sql AS $$
    SELECT pgflow._end_runs(ARRAY(SELECT r.id FROM pgflow.flow_runs r
                                   WHERE r.agent_id = ANY (p_agent_ids)
                                     AND r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')),
                            p_why, p_give_back, p_now)
$$;

-- Marks agents silent for longer than p_heartbeat_timeout (above 0, at most 7 days) offline and
-- crashes their Pending, Running and Paused runs (retrying those with retries left; Cancelling ones
-- end Cancelled), releasing their slots; so too the active runs whose agent row no longer exists
-- (deleted by hand). Runs without an agent (ad-hoc runs of local flows, transitions made in psql)
-- have no liveness signal and are left alone. Returns how many runs it ended.
CREATE OR REPLACE FUNCTION pgflow.reap_crashed_runs(p_heartbeat_timeout interval, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF p_heartbeat_timeout IS NULL OR p_heartbeat_timeout <= interval '0' THEN
        RAISE EXCEPTION 'pgflow: heartbeat timeout must be positive, got %', coalesce(p_heartbeat_timeout::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass a few heartbeat periods, e.g. interval ''90 seconds''';
    END IF;
    PERFORM pgflow._check_interval(p_heartbeat_timeout, 'heartbeat timeout', 0, 604800, true);
    UPDATE pgflow.agents SET status = 'OFFLINE'
     WHERE status = 'ONLINE' AND last_heartbeat_at < p_now - p_heartbeat_timeout;
    RETURN pgflow._end_agent_runs(ARRAY(
               SELECT DISTINCT a.id FROM pgflow.flow_runs r JOIN pgflow.agents a ON a.id = r.agent_id
                WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
                  AND (a.status = 'OFFLINE' OR a.last_heartbeat_at < p_now - p_heartbeat_timeout)),
               format('its agent stopped heartbeating (timeout %s)', p_heartbeat_timeout), false, p_now)
         + pgflow._end_runs(ARRAY(
               SELECT r.id FROM pgflow.flow_runs r
                WHERE r.state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING') AND r.agent_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM pgflow.agents a WHERE a.id = r.agent_id)),
               'its agent no longer exists', false, p_now);
END $$;

-- Marks Scheduled runs more than p_threshold (0 to 1 year) past their start Late; returns how many.
CREATE OR REPLACE FUNCTION pgflow.mark_late_runs(p_threshold interval, p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_interval(p_threshold, 'late threshold', 0, 31536000);
    RETURN (SELECT count(*)::integer FROM pgflow._transition_flow_runs_isolated(ARRAY(
        SELECT ROW(r.id, 'SCHEDULED', 'Late', format('not started %s after its scheduled time', p_threshold),
                   NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.run_queue q JOIN pgflow.flow_runs r ON r.id = q.flow_run_id
         WHERE q.scheduled_at < p_now - p_threshold AND r.state_name = 'Scheduled'
         ORDER BY r.id
           FOR UPDATE OF r SKIP LOCKED), NULL, p_now, true) t
     WHERE t.status = 'ACCEPTED');
END $$;

-- Fails (TimedOut) the paused flow runs whose pause timeout has passed; returns how many.
CREATE OR REPLACE FUNCTION pgflow.expire_paused_runs(p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE sql AS $$
    SELECT count(*)::integer FROM pgflow._transition_flow_runs_isolated(ARRAY(
        SELECT ROW(r.id, 'FAILED', 'TimedOut', format('paused past its timeout (%s)', r.pause_expires_at),
                   NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
          FROM pgflow.flow_runs r
         WHERE r.state_type = 'PAUSED' AND r.pause_expires_at <= p_now
         ORDER BY r.id
           FOR UPDATE SKIP LOCKED), NULL, p_now, true) t
     WHERE t.status IN ('ACCEPTED', 'REDIRECTED')
$$;

-- ============================================================================================
-- Leases, schedules, retention: bounds
-- ============================================================================================
ALTER FUNCTION pgflow.acquire_concurrency_slots(text[], integer, interval, uuid, timestamptz) RENAME TO _acquire_concurrency_slots_unchecked;
-- Takes p_slots (1 to 1,000,000) slots in every named limit, all or nothing, for p_lease (above 0,
-- at most 7 days); returns the lease id, or NULL when a limit is full now (see 0002).
CREATE FUNCTION pgflow.acquire_concurrency_slots(
    p_names     text[],
    p_slots     integer     DEFAULT 1,
    p_lease     interval    DEFAULT interval '5 minutes',
    p_holder_id uuid        DEFAULT NULL,
    p_now       timestamptz DEFAULT now()
) RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    IF p_slots > 1000000 THEN
        RAISE EXCEPTION 'pgflow: acquire at most 1000000 slots, not %', p_slots
            USING ERRCODE = '22023', HINT = 'pass p_slots => 1 to 1000000';
    END IF;
    IF p_lease > interval '0' THEN
        PERFORM pgflow._check_interval(p_lease, 'a lease', 0, 604800, true);
    END IF;
    RETURN pgflow._acquire_concurrency_slots_unchecked(p_names, p_slots, p_lease, p_holder_id, p_now);
END $$;

-- Extends a lease that has not expired yet to now + p_lease (above 0, at most 7 days); false if it is
-- gone or expired.
CREATE OR REPLACE FUNCTION pgflow.renew_concurrency_lease(p_lease_id uuid, p_lease interval DEFAULT interval '5 minutes',
                                                          p_now timestamptz DEFAULT now()) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_renewed integer;
BEGIN
    PERFORM pgflow._check_interval(p_lease, 'a lease', 0, 604800, true);
    UPDATE pgflow.concurrency_slots SET expires_at = p_now + p_lease
     WHERE lease_id = p_lease_id AND holder_kind = 'lease' AND expires_at > p_now;
    GET DIAGNOSTICS v_renewed = ROW_COUNT;
    RETURN v_renewed > 0;
END $$;

ALTER FUNCTION pgflow.schedule_flow_runs(uuid, timestamptz[], timestamptz) RENAME TO _schedule_flow_runs_unchecked;
-- Makes the future Scheduled runs of a schedule exactly p_times (see 0002): at most 100,000 finite times.
CREATE FUNCTION pgflow.schedule_flow_runs(p_deployment_schedule_id uuid, p_times timestamptz[],
                                          p_now timestamptz DEFAULT now())
RETURNS TABLE (inserted integer, deleted integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_times), 'schedule_flow_runs');
    PERFORM pgflow._check_time(t, 'a schedule time') FROM unnest(p_times) t;
    RETURN QUERY SELECT * FROM pgflow._schedule_flow_runs_unchecked(p_deployment_schedule_id, p_times, p_now);
END $$;

ALTER FUNCTION pgflow.delete_old_runs(interval, integer, timestamptz) RENAME TO _delete_old_runs_unchecked;
-- Deletes up to p_batch (1 to 100,000) flow runs that ended more than p_older_than (0 to 100 years)
-- ago (see 0002).
CREATE FUNCTION pgflow.delete_old_runs(p_older_than interval, p_batch integer DEFAULT 1000,
                                       p_now timestamptz DEFAULT now()) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF p_older_than >= interval '0' AND p_batch >= 1 THEN
        PERFORM pgflow._check_interval(p_older_than, 'retention age', 0, 3153600000);
        PERFORM pgflow._check_number(p_batch, 'a retention batch', 1, 100000);
    END IF;
    RETURN pgflow._delete_old_runs_unchecked(p_older_than, p_batch, p_now);
END $$;

ALTER FUNCTION pgflow.write_logs(uuid[], integer[], text[], text[], uuid[], timestamptz[], timestamptz) RENAME TO _write_logs_unchecked;
-- Writes many log lines (at most 100,000) in one statement (see 0002); returns how many.
CREATE FUNCTION pgflow.write_logs(
    p_flow_run_ids uuid[],
    p_levels       integer[],
    p_messages     text[],
    p_names        text[]        DEFAULT NULL,
    p_task_run_ids uuid[]        DEFAULT NULL,
    p_timestamps   timestamptz[] DEFAULT NULL,
    p_now          timestamptz   DEFAULT now()
) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_batch(cardinality(p_messages), 'write_logs');
    RETURN pgflow._write_logs_unchecked(p_flow_run_ids, p_levels, p_messages, p_names, p_task_run_ids, p_timestamps, p_now);
END $$;

-- ============================================================================================
-- The scheduler's locking reads as functions (row locks need UPDATE privilege on a table, which no
-- role has; a SECURITY DEFINER function takes them for the caller's transaction instead)
-- ============================================================================================
-- Up to p_limit (1 to 100,000) schedules with ids above p_after, in id order (keyset pagination), with
-- what the scheduler plans from: the expression, whether the schedule wants runs, its deployment's
-- missed-run policy, when it or its deployment last changed and the newest run it created. With p_lock
-- the schedule rows are locked FOR UPDATE for the caller's transaction and rows another transaction
-- holds are skipped (two schedulers split the schedules instead of racing on one).
CREATE FUNCTION pgflow.deployment_schedule_batch(p_after uuid, p_limit integer, p_lock boolean DEFAULT false)
RETURNS TABLE (id uuid, deployment_id uuid, kind text, expression text, interval_seconds float8,
               anchor_date timestamptz, timezone text, wants_runs boolean, missed_run_policy text,
               changed_at timestamptz, last_run_time timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgflow._check_number(p_limit, 'a schedule batch', 1, 100000);
    IF p_lock THEN
        RETURN QUERY
        SELECT s.id, s.deployment_id, s.kind, coalesce(s.cron, s.rrule), extract(epoch FROM s."interval")::float8,
               s.anchor_date, s.timezone, s.active AND NOT d.paused, d.missed_run_policy,
               greatest(s.updated_at, d.updated_at),
               (SELECT max(r.expected_start_time) FROM pgflow.flow_runs r
                 WHERE r.deployment_id = s.deployment_id AND r.deployment_schedule_id = s.id)
          FROM pgflow.deployment_schedules s JOIN pgflow.deployments d ON d.id = s.deployment_id
         WHERE p_after IS NULL OR s.id > p_after
         ORDER BY s.id LIMIT p_limit
           FOR UPDATE OF s SKIP LOCKED;
    ELSE
        RETURN QUERY
        SELECT s.id, s.deployment_id, s.kind, coalesce(s.cron, s.rrule), extract(epoch FROM s."interval")::float8,
               s.anchor_date, s.timezone, s.active AND NOT d.paused, d.missed_run_policy,
               greatest(s.updated_at, d.updated_at),
               (SELECT max(r.expected_start_time) FROM pgflow.flow_runs r
                 WHERE r.deployment_id = s.deployment_id AND r.deployment_schedule_id = s.id)
          FROM pgflow.deployment_schedules s JOIN pgflow.deployments d ON d.id = s.deployment_id
         WHERE p_after IS NULL OR s.id > p_after
         ORDER BY s.id LIMIT p_limit;
    END IF;
END $$;

-- Applies the missed-run policy: among schedule-created runs still waiting more than p_grace past
-- their start, cancels those whose deployment's policy (or p_default_policy where it has none) is
-- 'skip', and for 'latest' those with a newer due run of the same deployment. Runs an agent is
-- claiming right now are skipped (locked). Returns how many runs were cancelled.
CREATE FUNCTION pgflow.cancel_missed_runs(p_default_policy text, p_grace interval, p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[];
BEGIN
    PERFORM pgflow._check_missed_run_policy(p_default_policy);
    PERFORM pgflow._check_interval(p_grace, 'missed-run grace', 0, 31536000);
    v_ids := ARRAY(
        WITH missed AS (
            SELECT r.id, r.deployment_id, r.expected_start_time, coalesce(d.missed_run_policy, p_default_policy) AS policy
              FROM pgflow.run_queue q
              JOIN pgflow.flow_runs r ON r.id = q.flow_run_id
              JOIN pgflow.deployments d ON d.id = r.deployment_id
             WHERE r.deployment_schedule_id IS NOT NULL AND r.state_name IN ('Scheduled', 'Late')
               AND r.expected_start_time < p_now - p_grace
               FOR UPDATE OF q, r SKIP LOCKED)
        SELECT m.id FROM missed m
         WHERE m.policy = 'skip'
            OR (m.policy = 'latest' AND EXISTS (
                SELECT 1 FROM pgflow.flow_runs n JOIN pgflow.run_queue nq ON nq.flow_run_id = n.id
                 WHERE n.deployment_id = m.deployment_id AND n.deployment_schedule_id IS NOT NULL
                   AND n.expected_start_time > m.expected_start_time AND n.expected_start_time <= p_now))
         ORDER BY m.id);
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    RETURN (SELECT count(*)::integer FROM pgflow._transition_flow_runs_isolated(ARRAY(
                SELECT ROW(x, 'CANCELLING', 'Cancelling',
                           format('missed its scheduled time by more than %s s while nothing ran it (missed-run policy)',
                                  floor(extract(epoch FROM p_grace))::bigint),
                           NULL, NULL, NULL, NULL, NULL)::pgflow._proposal
                  FROM unnest(v_ids) x ORDER BY x), NULL, p_now, true) t
             WHERE t.state_type = 'CANCELLED');
END $$;

-- ============================================================================================
-- Least privilege. Five NOLOGIN roles (cluster-wide, so created only when missing); people and
-- services log in as their own users, members of one of them (docs/security.md):
--   pgflow_agent      runs flows: register, heartbeat, claim, states, task runs, logs, leases
--   pgflow_scheduler  materialises schedules and does maintenance: reaper, late runs, retention
--   pgflow_api        the CLI and HTTP API: configuration, enqueue, cancel, retry, delete, listings
--   pgflow_reader     reads the views only
--   pgflow_admin      every API function and every table (read only)
-- No role may write a table: every change goes through the API functions, which are SECURITY
-- DEFINER (they run as the schema owner) with search_path pinned to pg_catalog, pgflow, pg_temp
-- (pg_temp last: a caller's temporary tables never shadow a catalog or pgflow name).
-- Rule for later migrations: a new API function gets the same ALTER FUNCTION … SECURITY DEFINER SET
-- search_path, the migration repeats the REVOKE … FROM PUBLIC below, and GRANTs EXECUTE to the roles
-- whose duty needs it.
-- ============================================================================================
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['pgflow_agent', 'pgflow_scheduler', 'pgflow_api', 'pgflow_reader', 'pgflow_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another database of this cluster created it just now
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'pgflow: role % does not exist and % may not create roles', v_role, current_user
                        USING ERRCODE = '42501',
                              HINT = 'let a superuser run CREATE ROLE pgflow_agent NOLOGIN; (and pgflow_scheduler, pgflow_api, '
                                  || 'pgflow_reader, pgflow_admin) once per cluster, then run the upgrade again';
            END;
        END IF;
    END LOOP;
END $$;

-- The API functions run as the schema owner, with a search_path no caller can change. Pure helpers
-- (no table access) stay SECURITY INVOKER, so that queries can inline them.
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'pgflow'::regnamespace AND p.prokind = 'f' AND p.proname !~ '^_'
           AND p.proname NOT IN ('state_type_of', 'is_terminal', 'retry_delay', 'random_run_name', 'notify', 'bounds', 'schedule_error')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp', v_fn);
    END LOOP;
END $$;

REVOKE ALL ON SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgflow FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgflow FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgflow FROM PUBLIC;
GRANT USAGE ON SCHEMA pgflow TO pgflow_agent, pgflow_scheduler, pgflow_api, pgflow_reader, pgflow_admin;

-- Everyone: the pure helpers.
GRANT EXECUTE ON FUNCTION pgflow.state_type_of(text), pgflow.is_terminal(pgflow.state_type), pgflow.bounds(),
                          pgflow.schedule_error(text, text, text)
   TO pgflow_agent, pgflow_scheduler, pgflow_api, pgflow_reader, pgflow_admin;

-- pgflow_reader: the views.
GRANT SELECT ON pgflow.flow_run_history, pgflow.task_run_history, pgflow.queue_status, pgflow.deployment_list,
                pgflow.concurrency_status
   TO pgflow_reader, pgflow_api, pgflow_admin;

-- pgflow_agent: an agent and the flows it runs (the SDK: task runs, subflows, logs, leases, variables).
GRANT EXECUTE ON FUNCTION
    pgflow.register_agent(text, text[], timestamptz),
    pgflow.heartbeat(uuid, timestamptz),
    pgflow.deregister_agent(uuid, timestamptz),
    pgflow.claim_flow_runs(uuid, text[], integer, boolean, timestamptz),
    pgflow.set_flow_run_state(uuid, text, text, text, jsonb, timestamptz, timestamptz, uuid, uuid, text, timestamptz, boolean),
    pgflow.set_flow_run_states(uuid[], text[], text[], text[], jsonb[], uuid[], uuid, timestamptz, boolean),
    pgflow.set_task_run_state(uuid, text, text, text, jsonb, timestamptz, timestamptz, uuid, timestamptz, boolean),
    pgflow.set_task_run_states(uuid[], text[], text[], text[], jsonb[], uuid[], timestamptz, timestamptz[], boolean),
    pgflow.create_flow_run(text, jsonb, text, text[], uuid, text, text, integer, float8[], text, float8, uuid, timestamptz),
    pgflow.create_task_run(uuid, text, text, text, jsonb, text[], text, interval, integer, float8[], text, float8, timestamptz, boolean),
    pgflow.create_task_runs(uuid, text[], text[], text[], jsonb[], text[], text[], interval[], integer[], text[], text[], float8[],
                            timestamptz[], boolean[], timestamptz),
    pgflow.run_deployment(text, jsonb, timestamptz, text, text[], text, text, uuid, timestamptz),
    pgflow.write_log(uuid, integer, text, text, uuid, timestamptz),
    pgflow.write_logs(uuid[], integer[], text[], text[], uuid[], timestamptz[], timestamptz),
    pgflow.acquire_concurrency_slots(text[], integer, interval, uuid, timestamptz),
    pgflow.release_concurrency_slots(uuid),
    pgflow.renew_concurrency_lease(uuid, interval, timestamptz),
    pgflow.get_variable(text),
    pgflow.set_variable(text, jsonb, timestamptz)
TO pgflow_agent;
-- what the agent and the SDK read directly: a run's name and state, the deployment's timeout at
-- claim time, results
-- (the SDK's in-process flows read a run's name and state from the history view, a stored task result
-- from results; claim_flow_runs returns each run's timeout, agent_unchanged_runs its stale runs)
GRANT SELECT ON pgflow.flow_run_history, pgflow.results TO pgflow_agent;

-- pgflow_scheduler: schedules and maintenance.
GRANT EXECUTE ON FUNCTION
    pgflow.deployment_schedule_batch(uuid, integer, boolean),
    pgflow.schedule_flow_runs(uuid, timestamptz[], timestamptz),
    pgflow.cancel_missed_runs(text, interval, timestamptz),
    pgflow.reap_crashed_runs(interval, timestamptz),
    pgflow.mark_late_runs(interval, timestamptz),
    pgflow.expire_paused_runs(timestamptz),
    pgflow.release_expired_slots(timestamptz),
    pgflow.delete_old_runs(interval, integer, timestamptz),
    pgflow.set_flow_run_states(uuid[], text[], text[], text[], jsonb[], uuid[], uuid, timestamptz, boolean),
    pgflow.notify(text, text)
TO pgflow_scheduler;
-- what the scheduler reads directly: schedules and their deployments, the runs schedules made, the
-- queues' next due times

-- pgflow_api: configuration, enqueue, cancel / resume / retry, manual transitions, deletion, listings.
GRANT EXECUTE ON FUNCTION
    pgflow.create_work_queue(text, integer, integer, boolean, text, timestamptz),
    pgflow.set_work_queue_paused(text, boolean, timestamptz),
    pgflow.create_deployment(text, text, text, jsonb, text, text[], text, text, integer, text, integer, float8[], text, float8,
                             boolean, float8, text, timestamptz),
    pgflow.set_deployment_paused(text, boolean, timestamptz),
    pgflow.set_deployment_missed_run_policy(text, text, timestamptz),
    pgflow.create_deployment_schedule(text, text, text, text, jsonb, boolean, timestamptz, timestamptz),
    pgflow.create_concurrency_limit(text, integer, boolean, timestamptz),
    pgflow.delete_concurrency_limit(text),
    pgflow.reset_concurrency_limit(text),
    pgflow.set_variable(text, jsonb, timestamptz),
    pgflow.get_variable(text),
    pgflow.run_deployment(text, jsonb, timestamptz, text, text[], text, text, uuid, timestamptz),
    pgflow.run_deployments(text, jsonb[], timestamptz, text[], timestamptz),
    pgflow.create_flow_run(text, jsonb, text, text[], uuid, text, text, integer, float8[], text, float8, uuid, timestamptz),
    pgflow.set_flow_run_state(uuid, text, text, text, jsonb, timestamptz, timestamptz, uuid, uuid, text, timestamptz, boolean),
    pgflow.set_flow_run_states(uuid[], text[], text[], text[], jsonb[], uuid[], uuid, timestamptz, boolean),
    pgflow.cancel_flow_run(uuid, text, timestamptz),
    pgflow.resume_flow_run(uuid, timestamptz),
    pgflow.retry_flow_run(uuid, timestamptz, timestamptz),
    pgflow.delete_flow_run(uuid),
    pgflow.delete_deployment_schedule(uuid, timestamptz),
    pgflow.delete_deployment(text, timestamptz),
    pgflow.delete_work_queue(text),
    pgflow._deployment_id(text)   -- the CLI's listings resolve 'flow/deployment' with it
TO pgflow_api;
GRANT SELECT ON ALL TABLES IN SCHEMA pgflow TO pgflow_api;

-- pgflow_admin: every API function, every table to read.
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN SELECT p.oid::regprocedure FROM pg_proc p
                 WHERE p.pronamespace = 'pgflow'::regnamespace AND p.prokind = 'f' AND p.proname !~ '^_' LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgflow_admin', v_fn);
    END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION pgflow._deployment_id(text) TO pgflow_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA pgflow TO pgflow_admin;
