// Listings of the event layer the CLI prints (tables or `--json`): events, automations, notification
// deliveries and targets. Each is one fixed query over a function or view of 0008_events.sql.
import Foundation
import PGFlowPostgres

extension PGFlowListing {
    /// Events (`pgflow.event_page`), newest first, or after `afterSeq` oldest first (`--follow`).
    public static func events(pattern: String?, resourceID: String?, since: Date?, limit: Int, afterSeq: Int64? = nil,
                              json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT seq, occurred, event, resource_id AS resource, coalesce(resource ->> 'name', '') AS name, payload
              FROM pgflow.event_page($1, $2, $3, NULL, $4, NULL, $5)
            """, [pattern, resourceID, since, limit, afterSeq], json: json, on: c)
    }

    /// Automations (`pgflow.automation_list`), by name; `name` for one with its trigger and actions.
    public static func automations(name: String? = nil, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT name, kind, paused, source, firings, last_fired_at\(json || name != nil ? ", trigger, actions, description, created_at, updated_at, id" : "")
              FROM pgflow.automation_list WHERE $1::text IS NULL OR name = $1 ORDER BY name
            """, [name], json: json, on: c)
    }

    /// An automation's latest firings, newest first.
    public static func automationFirings(name: String, limit: Int, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT f.id, f.fired_at, f.action ->> 'type' AS action, f.status, f.trigger_key, f.outcome, f.error
              FROM pgflow.automation_firings f JOIN pgflow.automations a ON a.id = f.automation_id
             WHERE a.name = $1 ORDER BY f.id DESC LIMIT $2
            """, [name, limit], json: json, on: c)
    }

    /// Notification deliveries (`pgflow.notification_list`), newest first; `deadOnly` for dead letters.
    public static func notifications(deadOnly: Bool, limit: Int, json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("""
            SELECT id, target, status, attempts, max_attempts, created_at, next_attempt_at, automation, last_error
              FROM pgflow.notification_list WHERE NOT $1 OR status = 'dead' ORDER BY id DESC LIMIT $2
            """, [deadOnly, limit], json: json, on: c)
    }

    /// Notification targets (`pgflow.notification_target_list`; keys are never shown).
    public static func notificationTargets(json: Bool, on c: PostgresConnection) throws -> PostgresResult {
        try run("SELECT name, url, format, signed, max_attempts, backoff_seconds, updated_at FROM pgflow.notification_target_list ORDER BY name",
                [], json: json, on: c)
    }
}
