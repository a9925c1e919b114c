// Typed calls for the API's changes that the CLI's calls do not cover, and the live stream's reads.
import Foundation
import PGFlowPostgres

/// One state change or log line for the live stream.
public struct StreamEvent: Sendable, Equatable {
    /// `state` or `log`.
    public let kind: String
    /// The flow_run_states or logs row id.
    public let id: Int64
    /// The run it belongs to.
    public let flowRunID: UUID
    /// The run's deployment (`flow/deployment`), or its flow for a run without one (states only).
    public let deployment: String?
    /// The event as a JSON object.
    public let json: String
}

extension PGFlowClient {
    /// `pgflow.cancel_flow_run` with a message.
    public static func cancelFlowRun(_ id: UUID, message: String, on c: PostgresConnection) throws -> TransitionResult {
        guard let row = try c.query("SELECT * FROM pgflow.cancel_flow_run($1, $2)", [id, message]).first else {
            throw PostgresError(kind: .decoding, message: "no transition result")
        }
        return try TransitionResult(row: row)
    }

    /// `pgflow.delete_schedule_of_deployment`: a schedule of that deployment (SQLSTATE P0002 otherwise).
    public static func deleteDeploymentSchedule(deployment: String, id: UUID, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.delete_schedule_of_deployment($1, $2)", [deployment, id])
    }


    /// `pgflow.renew_stream_listener`: while a live lease exists, appended states and logs are NOTIFYd.
    public static func renewStreamListener(_ id: UUID, leaseSeconds: Double, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.renew_stream_listener($1, make_interval(secs => $2))", [id, leaseSeconds])
    }

    /// `pgflow.drop_stream_listener`.
    public static func dropStreamListener(_ id: UUID, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.drop_stream_listener($1)", [id])
    }

    /// The state rows a `pgflow_states` notification names (`run:id` pairs), oldest first.
    public static func stateEvents(_ keys: [(run: UUID, id: Int64)], on c: PostgresConnection) throws -> [StreamEvent] {
        try stateRows("""
            SELECT s.* FROM unnest($1::uuid[], $2::bigint[]) k(run, id)
              CROSS JOIN LATERAL pgflow.flow_run_state_events(k.id - 1, k.run, NULL, 1) s
            """, [PostgresTextArray(keys.map { $0.run.uuidString }), PostgresTextArray(keys.map { String($0.id) })], on: c)
    }

    /// `pgflow.flow_run_state_events`: states after `after` (for a run, a deployment, or all), oldest first.
    public static func stateEvents(after: Int64, flowRun: UUID?, deployment: String?, limit: Int, on c: PostgresConnection) throws -> [StreamEvent] {
        try stateRows("SELECT * FROM pgflow.flow_run_state_events($1, $2, $3, $4)", [after, flowRun, deployment, limit], on: c)
    }

    private static func stateRows(_ select: String, _ parameters: [(any PostgresEncodable)?], on c: PostgresConnection) throws -> [StreamEvent] {
        try c.query("SELECT e.id, e.flow_run_id, e.deployment, row_to_json(e)::text FROM (\(select)) e ORDER BY e.id", parameters).rows.map {
            StreamEvent(kind: "state", id: try $0.decode(Int64.self, at: 0), flowRunID: try $0.decode(UUID.self, at: 1),
                        deployment: try $0.decode(String?.self, at: 2), json: try $0.decode(String.self, at: 3))
        }
    }

    /// `pgflow.flow_run_log_page`: a run's log lines after `after`, as stream events.
    public static func logEvents(flowRun: UUID, after: Int64, limit: Int, on c: PostgresConnection) throws -> [StreamEvent] {
        try c.query("""
            SELECT l.id, row_to_json(x)::text FROM pgflow.flow_run_log_page($1, $2, $3) l
              CROSS JOIN LATERAL (SELECT $1::uuid AS flow_run_id, l.*) x ORDER BY l.id
            """, [flowRun, after, limit]).rows.map {
            StreamEvent(kind: "log", id: try $0.decode(Int64.self, at: 0), flowRunID: flowRun, deployment: nil,
                        json: try $0.decode(String.self, at: 1))
        }
    }
}
