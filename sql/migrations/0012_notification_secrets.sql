-- Notification targets take their credentials from pgflow secrets: a target's signing key, and its URL
-- when the URL is itself a credential (a Slack webhook URL is), are named secrets, sealed in the client
-- with PGFLOW_SECRET_KEY (`pgflow secret set NAME`) and opened by pgflow-scheduler, which holds the same
-- key. The database sees names and ciphertext only. Plaintext signing keys are no longer accepted; the
-- ones of targets created before this migration keep working until the target is set again.

ALTER TABLE pgflow.notification_targets
    ALTER COLUMN url DROP NOT NULL,
    ADD COLUMN url_secret text CHECK (url_secret ~ '^[a-z0-9][a-z0-9_.-]{0,254}$'),
    ADD COLUMN signing_key_secret text CHECK (signing_key_secret ~ '^[a-z0-9][a-z0-9_.-]{0,254}$'),
    ADD CONSTRAINT notification_targets_one_url CHECK ((url IS NULL) <> (url_secret IS NULL)),
    ADD CONSTRAINT notification_targets_one_key CHECK (signing_key IS NULL OR signing_key_secret IS NULL);
COMMENT ON COLUMN pgflow.notification_targets.signing_key IS
    'plaintext keys of targets set before migration 0012 only; pgflow.set_notification_target clears it (keys are secrets now)';

DROP FUNCTION pgflow.set_notification_target(text, text, text, text, integer, float8, timestamptz);

-- Creates or replaces a notification target: its URL (p_url) or the name of the secret holding it
-- (p_url_secret), and the name of the secret holding its HMAC-SHA256 signing key (NULL: unsigned).
-- Named secrets must exist (P0002 otherwise).
CREATE FUNCTION pgflow.set_notification_target(p_name text, p_url text, p_format text DEFAULT 'json',
                                               p_signing_key_secret text DEFAULT NULL, p_max_attempts integer DEFAULT 5,
                                               p_backoff_seconds float8 DEFAULT 10, p_now timestamptz DEFAULT now(),
                                               p_url_secret text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_secret text;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9_.:@-]{1,100}$' THEN
        RAISE EXCEPTION 'pgflow: invalid notification target name %', coalesce(quote_literal(p_name), 'NULL')
            USING ERRCODE = '22023', HINT = 'use 1 to 100 letters, digits, ''_'', ''.'', '':'', ''@'' or ''-''';
    END IF;
    IF (p_url IS NULL) = (p_url_secret IS NULL) THEN
        RAISE EXCEPTION 'pgflow: a notification target needs a URL or the name of a secret holding it, not both'
            USING ERRCODE = '22023', HINT = 'pass p_url => ''https://…'', or p_url_secret => ''slack-url'' after pgflow secret set slack-url';
    END IF;
    IF p_url IS NOT NULL AND (p_url !~ '^https?://[^[:space:]/]+(/[^[:space:]]*)?$' OR length(p_url) > 2000) THEN
        RAISE EXCEPTION 'pgflow: invalid webhook URL %', quote_literal(left(p_url, 200))
            USING ERRCODE = '22023', HINT = 'use http://host[:port]/path or https://…';
    END IF;
    IF p_format IS NULL OR p_format NOT IN ('json', 'slack') THEN
        RAISE EXCEPTION 'pgflow: invalid notification format %', coalesce(quote_literal(p_format), 'NULL')
            USING ERRCODE = '22023', HINT = 'use json (the event and message) or slack ({"text": message})';
    END IF;
    IF p_max_attempts IS NULL OR p_max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'pgflow: max attempts must be 1 to 100, got %', coalesce(p_max_attempts::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass 5, say';
    END IF;
    IF p_backoff_seconds IS NULL OR NOT (p_backoff_seconds > 0 AND p_backoff_seconds <= 3600) THEN
        RAISE EXCEPTION 'pgflow: backoff must be more than 0 and at most 3600 seconds, got %', coalesce(p_backoff_seconds::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'pass 10, say (the delays double: 10, 20, 40 s, …)';
    END IF;
    FOREACH v_secret IN ARRAY ARRAY[p_url_secret, p_signing_key_secret] LOOP
        IF v_secret IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgflow.secrets s WHERE s.name = v_secret) THEN
            RAISE EXCEPTION 'pgflow: unknown secret %', quote_literal(left(v_secret, 200))
                USING ERRCODE = 'P0002', HINT = 'store it first: pgflow secret set NAME (the value is read from stdin and sealed in the client)';
        END IF;
    END LOOP;
    INSERT INTO pgflow.notification_targets (name, url, url_secret, format, signing_key, signing_key_secret, max_attempts,
                                             backoff_seconds, created_at, updated_at)
    VALUES (p_name, p_url, p_url_secret, p_format, NULL, p_signing_key_secret, p_max_attempts, p_backoff_seconds, p_now, p_now)
    ON CONFLICT (name) DO UPDATE SET url = excluded.url, url_secret = excluded.url_secret, format = excluded.format,
                                     signing_key = NULL, signing_key_secret = excluded.signing_key_secret,
                                     max_attempts = excluded.max_attempts, backoff_seconds = excluded.backoff_seconds,
                                     updated_at = excluded.updated_at;
END $$;

DROP FUNCTION pgflow.claim_notifications(integer, interval, timestamptz);

-- The sender's claim: up to p_limit due deliveries, each leased for p_lease (a sender that dies
-- mid-delivery loses the lease and another tries again; that try counts as an attempt). Deliveries
-- whose lease ran out on their last attempt become dead letters here. A target's secrets come sealed
-- (base64 ciphertext and key id; NULL when the named secret was deleted since): the sender opens them.
CREATE FUNCTION pgflow.claim_notifications(p_limit integer DEFAULT 20, p_lease interval DEFAULT interval '60 seconds',
                                           p_now timestamptz DEFAULT now())
RETURNS TABLE (id bigint, target text, url text, format text, signing_key text, body text, attempt integer,
               url_secret text, url_sealed text, url_key_id text,
               signing_key_secret text, signing_key_sealed text, signing_key_key_id text)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'pgflow: claim 1 to 1000 notifications, got %', coalesce(p_limit::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    UPDATE pgflow.notification_deliveries d
       SET status = 'dead', last_error = coalesce(d.last_error, 'the sender stopped during the last attempt')
      FROM pgflow.notification_targets t
     WHERE t.name = d.target AND d.status = 'sending' AND d.next_attempt_at <= p_now AND d.attempts >= t.max_attempts;
    RETURN QUERY
    WITH due AS (
        SELECT d.id FROM pgflow.notification_deliveries d
         WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= p_now
         ORDER BY d.next_attempt_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED),
    claimed AS (
        UPDATE pgflow.notification_deliveries d
           SET status = 'sending', attempts = d.attempts + 1, next_attempt_at = p_now + p_lease
          FROM due
         WHERE d.id = due.id
        RETURNING d.id, d.target, d.body, d.attempts)
    SELECT c.id, c.target, t.url, t.format, t.signing_key, c.body::text, c.attempts,
           t.url_secret, encode(us.ciphertext, 'base64'), us.key_id,
           t.signing_key_secret, encode(ks.ciphertext, 'base64'), ks.key_id
      FROM claimed c
      JOIN pgflow.notification_targets t ON t.name = c.target
      LEFT JOIN pgflow.secrets us ON us.name = t.url_secret
      LEFT JOIN pgflow.secrets ks ON ks.name = t.signing_key_secret;
END $$;

CREATE OR REPLACE VIEW pgflow.notification_target_list AS
SELECT name, coalesce(url, 'secret:' || url_secret) AS url, format,
       signing_key IS NOT NULL OR signing_key_secret IS NOT NULL AS signed, max_attempts, backoff_seconds, created_at, updated_at,
       url_secret, signing_key_secret
  FROM pgflow.notification_targets;

-- Privileges as 0008 gave them.
ALTER FUNCTION pgflow.set_notification_target(text, text, text, text, integer, float8, timestamptz, text)
    SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
ALTER FUNCTION pgflow.claim_notifications(integer, interval, timestamptz)
    SECURITY DEFINER SET search_path = pg_catalog, pgflow, pg_temp;
REVOKE EXECUTE ON FUNCTION pgflow.set_notification_target(text, text, text, text, integer, float8, timestamptz, text),
                           pgflow.claim_notifications(integer, interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgflow.set_notification_target(text, text, text, text, integer, float8, timestamptz, text) TO pgflow_api, pgflow_admin;
GRANT EXECUTE ON FUNCTION pgflow.claim_notifications(integer, interval, timestamptz) TO pgflow_scheduler, pgflow_admin;
