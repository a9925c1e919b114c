// Typed calls of the event layer (sql/migrations/0008_events.sql, docs/events.md): emitting and
// reading events, automations, notification targets and deliveries, and the evaluator's passes.
import Foundation
import PGFlowPostgres

/// What one `pgflow.evaluate_events` pass did.
public struct EventEvaluation: Sendable, Equatable {
    /// Events read (and cursors moved past them).
    public var events: Int
    /// Actions fired.
    public var firings: Int
    /// Whether the locked shards had more events than the pass read (call again).
    public var more: Bool

    /// Creates a value.
    public init(events: Int, firings: Int, more: Bool) {
        self.events = events
        self.firings = firings
        self.more = more
    }
}

/// A notification delivery the sender claimed.
public struct NotificationDelivery: Sendable, Equatable {
    /// The delivery's id.
    public var id: Int64
    /// The target's name and body format (`json` or `slack`).
    public var target: String, format: String
    /// The target's URL when it is stored as such (nil when it is the secret `urlSecret`).
    public var url: String?
    /// The name of the secret holding the URL, and that secret sealed (nil when it was deleted since).
    public var urlSecret: String?, urlSealed: SealedSecret?
    /// A plaintext HMAC-SHA256 key of a target set before migration 0012 (new targets name a secret).
    public var signingKey: String?
    /// The name of the secret holding the signing key, and that secret sealed (nil when it was deleted since).
    public var signingKeySecret: String?, signingKeySealed: SealedSecret?
    /// The JSON body, exactly as it is to be sent (and signed).
    public var body: String
    /// Which attempt this is (1 for the first).
    public var attempt: Int
}

/// What `pgflow.maintain_events` did.
public struct EventMaintenance: Sendable, Equatable {
    /// Day partitions created and dropped; old rows deleted from the default partition.
    public var created: Int, dropped: Int, deleted: Int
}

/// One row of `pgflow.event_page`.
public struct EventRow: Sendable, Equatable {
    /// Order of appending (a cursor for `--follow`).
    public var seq: Int64
    /// The event's id.
    public var id: UUID
    /// When it happened.
    public var occurred: Date
    /// Its name.
    public var event: String
    /// The resource's id, and the resource, related resources and payload as JSON text.
    public var resourceID: String?, resourceJSON: String, relatedJSON: String, payloadJSON: String
}

extension PGFlowClient {
    // MARK: Events

    /// `pgflow.emit_event`: appends an event (names starting `pgflow.` are the engine's own); returns its id.
    public static func emitEvent(_ event: String, resourceJSON: String = "{}", payloadJSON: String = "{}", relatedJSON: String = "[]",
                                 occurred: Date? = nil, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.emit_event($1, $2::jsonb, $3::jsonb, $4::jsonb, coalesce($5, now()))",
                    [event, PostgresRawJSON(resourceJSON), PostgresRawJSON(payloadJSON), PostgresRawJSON(relatedJSON), occurred])
            .scalar(UUID.self)
    }

    /// `pgflow.event_page`: newest first, or with `afterSeq` the events after it, oldest first.
    public static func events(pattern: String? = nil, resourceID: String? = nil, since: Date? = nil, until: Date? = nil,
                              limit: Int = 50, beforeSeq: Int64? = nil, afterSeq: Int64? = nil,
                              on c: PostgresConnection) throws -> [EventRow] {
        try c.query("""
            SELECT seq, id, occurred, event, resource_id, resource::text, related::text, payload::text
              FROM pgflow.event_page($1, $2, $3, $4, $5, $6, $7)
            """, [pattern, resourceID, since, until, limit, beforeSeq, afterSeq]).rows.map { r in
            EventRow(seq: try r.decode(at: 0), id: try r.decode(at: 1), occurred: try r.decode(at: 2), event: try r.decode(at: 3),
                     resourceID: try r.decode(at: 4), resourceJSON: try r.decode(at: 5), relatedJSON: try r.decode(at: 6),
                     payloadJSON: try r.decode(at: 7))
        }
    }

    /// The latest event's seq (0 when there is none): where `pgflow event ls --follow` starts.
    public static func latestEventSeq(on c: PostgresConnection) throws -> Int64 {
        try c.query("SELECT coalesce(max(seq), 0) FROM pgflow.event_page(p_limit => 1)").scalar(Int64.self)
    }

    /// `pgflow.event_page` as a JSON array (the API's `GET /api/events`).
    public static func eventsJSON(pattern: String?, resourceID: String?, since: Date?, until: Date?, limit: Int,
                                  beforeSeq: Int64?, afterSeq: Int64?, on c: PostgresConnection) throws -> String {
        try c.query("""
            SELECT coalesce(json_agg(e), '[]')::text FROM pgflow.event_page($1, $2, $3, $4, $5, $6, $7) e
            """, [pattern, resourceID, since, until, limit, beforeSeq, afterSeq]).scalar(String.self)
    }

    /// `pgflow.receive_webhook`: turns an inbound webhook's JSON body into an event; returns its id.
    public static func receiveWebhook(slug: String, bodyJSON: String, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.receive_webhook($1, $2::jsonb)", [slug, PostgresRawJSON(bodyJSON)]).scalar(UUID.self)
    }

    /// `pgflow.set_webhook`: creates or replaces an inbound webhook and its template.
    public static func setWebhook(slug: String, templateJSON: String, on c: PostgresConnection) throws {
        _ = try c.query("SELECT pgflow.set_webhook($1, $2::jsonb)", [slug, PostgresRawJSON(templateJSON)])
    }

    // MARK: The evaluator

    /// `pgflow.evaluate_events`: one pass over up to `maxShards` shards with waiting events.
    public static func evaluateEvents(limit: Int = 1000, maxShards: Int = 8, now: Date? = nil, on c: PostgresConnection) throws -> EventEvaluation {
        let r = try c.query("SELECT events, firings, more FROM pgflow.evaluate_events($1, $2, coalesce($3, now()))", [limit, maxShards, now])
        guard let row = r.first else { return EventEvaluation(events: 0, firings: 0, more: false) }
        return EventEvaluation(events: try row.decode(at: 0), firings: try row.decode(at: 1), more: try row.decode(at: 2))
    }

    /// `pgflow.evaluate_proactive`: fires the proactive triggers whose wait ran out; returns actions fired.
    public static func evaluateProactive(now: Date? = nil, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.evaluate_proactive(coalesce($1, now()))", [now]).scalar(Int.self)
    }

    /// `pgflow.maintain_events`: day partitions ahead, old ones dropped.
    public static func maintainEvents(retention seconds: Double, now: Date, on c: PostgresConnection) throws -> EventMaintenance {
        let r = try c.query("SELECT created, dropped, deleted FROM pgflow.maintain_events(make_interval(secs => $1), 3, $2)", [seconds, now])
        guard let row = r.first else { return EventMaintenance(created: 0, dropped: 0, deleted: 0) }
        return EventMaintenance(created: try row.decode(at: 0), dropped: try row.decode(at: 1), deleted: try row.decode(at: 2))
    }

    // MARK: Notifications

    /// `pgflow.claim_notifications`: due deliveries, each leased for `lease` seconds.
    public static func claimNotifications(limit: Int, lease: Double, on c: PostgresConnection) throws -> [NotificationDelivery] {
        try c.query("""
            SELECT id, target, url, format, signing_key, body, attempt, url_secret, url_sealed, url_key_id,
                   signing_key_secret, signing_key_sealed, signing_key_key_id
              FROM pgflow.claim_notifications($1, make_interval(secs => $2))
            """, [limit, lease]).rows.map { r in
            func sealed(_ name: String?, _ at: Int) throws -> SealedSecret? {
                guard let name, let text = try r.decode(String?.self, at: at), let keyID = try r.decode(String?.self, at: at + 1),
                      let data = Data(base64Encoded: text.replacingOccurrences(of: "\n", with: "")) else { return nil }
                return SealedSecret(name: name, ciphertext: data, keyID: keyID)
            }
            let urlSecret = try r.decode(String?.self, at: 7), keySecret = try r.decode(String?.self, at: 10)
            return NotificationDelivery(id: try r.decode(at: 0), target: try r.decode(at: 1), format: try r.decode(at: 3), url: try r.decode(at: 2),
                                        urlSecret: urlSecret, urlSealed: try sealed(urlSecret, 8),
                                        signingKey: try r.decode(at: 4), signingKeySecret: keySecret, signingKeySealed: try sealed(keySecret, 11),
                                        body: try r.decode(at: 5), attempt: try r.decode(at: 6))
        }
    }

    /// `pgflow.record_notification_attempt`: returns the delivery's new status (delivered, pending, dead).
    @discardableResult
    public static func recordNotificationAttempt(id: Int64, delivered: Bool, error: String?, on c: PostgresConnection) throws -> String {
        try c.query("SELECT pgflow.record_notification_attempt($1, $2, $3)", [id, delivered, error]).scalar(String.self)
    }

    /// `pgflow.retry_notification`: sends a dead letter again.
    public static func retryNotification(id: Int64, on c: PostgresConnection) throws {
        _ = try c.query("SELECT pgflow.retry_notification($1)", [id])
    }

    /// `pgflow.set_notification_target`: creates or replaces a named webhook target with its URL, or the
    /// name of the secret holding it (`urlSecret`), and the name of the secret holding its signing key.
    public static func setNotificationTarget(name: String, url: String?, urlSecret: String? = nil, format: String = "json",
                                             signingKeySecret: String? = nil, maxAttempts: Int = 5, backoffSeconds: Double = 10,
                                             on c: PostgresConnection) throws {
        _ = try c.query("SELECT pgflow.set_notification_target($1, $2, $3, $4, $5, $6, p_url_secret => $7)",
                        [name, url, format, signingKeySecret, maxAttempts, backoffSeconds, urlSecret])
    }

    /// `pgflow.delete_notification_target`.
    public static func deleteNotificationTarget(name: String, on c: PostgresConnection) throws {
        _ = try c.query("SELECT pgflow.delete_notification_target($1)", [name])
    }

    /// Deliveries (`pgflow.notification_list`), newest first; `deadOnly` for the dead letters.
    public static func notificationsJSON(deadOnly: Bool, limit: Int, on c: PostgresConnection) throws -> String {
        try c.query("""
            SELECT coalesce(json_agg(n ORDER BY n.id DESC), '[]')::text
              FROM (SELECT id, target, status, attempts, max_attempts, next_attempt_at, last_error, created_at, delivered_at,
                           automation, event_id
                      FROM pgflow.notification_list WHERE NOT $1 OR status = 'dead' ORDER BY id DESC LIMIT $2) n
            """, [deadOnly, limit]).scalar(String.self)
    }

    /// The notification targets (`pgflow.notification_target_list`: no signing keys).
    public static func notificationTargetsJSON(on c: PostgresConnection) throws -> String {
        try c.query("SELECT coalesce(json_agg(t ORDER BY t.name), '[]')::text FROM pgflow.notification_target_list t").scalar(String.self)
    }

    // MARK: Automations

    /// `pgflow.create_automation`; `replace` replaces one of the same name. Returns its id.
    @discardableResult
    public static func createAutomation(name: String, triggerJSON: String, actionsJSON: String, description: String? = nil,
                                        replace: Bool = false, source: String = "sql", on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.create_automation($1, $2::jsonb, $3::jsonb, $4, $5, $6)",
                    [name, PostgresRawJSON(triggerJSON), PostgresRawJSON(actionsJSON), description, replace, source]).scalar(UUID.self)
    }

    /// `pgflow.set_automation_paused`.
    public static func setAutomationPaused(name: String, paused: Bool, on c: PostgresConnection) throws {
        _ = try c.query("SELECT pgflow.set_automation_paused($1, $2)", [name, paused])
    }

    /// `pgflow.delete_automation`.
    public static func deleteAutomation(name: String, on c: PostgresConnection) throws {
        _ = try c.query("SELECT pgflow.delete_automation($1)", [name])
    }

    /// `pgflow.set_deployment_triggers`: a deployment's `triggers:` as automations; returns how many.
    @discardableResult
    public static func setDeploymentTriggers(deployment: String, triggersJSON: String, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.set_deployment_triggers($1, $2::jsonb)", [deployment, PostgresRawJSON(triggersJSON)]).scalar(Int.self)
    }

    /// The automations (`pgflow.automation_list`) as a JSON array, by name.
    public static func automationsJSON(on c: PostgresConnection) throws -> String {
        try c.query("SELECT coalesce(json_agg(a ORDER BY a.name), '[]')::text FROM pgflow.automation_list a").scalar(String.self)
    }

    /// One automation with its last 20 firings as JSON, or nil when unknown.
    public static func automationJSON(name: String, on c: PostgresConnection) throws -> String? {
        try c.query("""
            SELECT (to_jsonb(a) || jsonb_build_object('recent_firings', coalesce((
                       SELECT jsonb_agg(f ORDER BY f.id DESC) FROM (
                           SELECT id, trigger_key, action_index, action, event_id, event_occurred, fired_at, status, outcome, error
                             FROM pgflow.automation_firings WHERE automation_id = a.id ORDER BY id DESC LIMIT 20) f), '[]')))::text
              FROM pgflow.automation_list a WHERE a.name = $1
            """, [name]).first?.decode(String.self, at: 0)
    }
}
