// Typed calls the CLI uses to operate on flow runs, work queues and concurrency limits.
import Foundation
import PGFlowPostgres

extension PGFlowClient {
    /// `pgflow.cancel_flow_run`.
    public static func cancelFlowRun(_ id: UUID, on c: PostgresConnection) throws -> TransitionResult {
        try transition("SELECT * FROM pgflow.cancel_flow_run($1, 'cancelled from the CLI')", id, on: c)
    }

    /// `pgflow.resume_flow_run`.
    public static func resumeFlowRun(_ id: UUID, on c: PostgresConnection) throws -> TransitionResult {
        try transition("SELECT * FROM pgflow.resume_flow_run($1)", id, on: c)
    }

    /// `pgflow.retry_flow_run`.
    public static func retryFlowRun(_ id: UUID, on c: PostgresConnection) throws -> TransitionResult {
        try transition("SELECT * FROM pgflow.retry_flow_run($1)", id, on: c)
    }

    /// `pgflow.delete_flow_run`: deletes a run that is not in progress with its states, task runs, logs
    /// and result (SQLSTATE 55000 for a run in progress, P0002 for an unknown one).
    public static func deleteFlowRun(_ id: UUID, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.delete_flow_run($1)", [id])
    }

    private static func transition(_ sql: String, _ id: UUID, on c: PostgresConnection) throws -> TransitionResult {
        guard let row = try c.query(sql, [id]).first else { throw PostgresError(kind: .decoding, message: "no transition result") }
        return try TransitionResult(row: row)
    }

    /// `pgflow.create_work_queue`: creates a queue or sets all its settings; returns its id.
    @discardableResult
    public static func createWorkQueue(_ name: String, priority: Int = 1, concurrencyLimit: Int? = nil, paused: Bool = false,
                                       description: String? = nil, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.create_work_queue($1, $2, $3, $4, $5)", [name, priority, concurrencyLimit, paused, description]).scalar(UUID.self)
    }

    /// `pgflow.set_work_queue_concurrency_limit`: sets (nil: removes) a queue's limit, keeping its other settings.
    public static func setWorkQueueConcurrencyLimit(_ name: String, limit: Int?, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.set_work_queue_concurrency_limit($1, $2)", [name, limit])
    }

    /// `pgflow.set_work_queue_paused`.
    public static func setWorkQueuePaused(_ name: String, paused: Bool, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.set_work_queue_paused($1, $2)", [name, paused])
    }

    /// `pgflow.delete_work_queue`: deletes a queue nothing uses, with its limit (SQLSTATE 55000 for
    /// `default` or a queue a deployment, an online agent or a waiting or active run uses).
    public static func deleteWorkQueue(_ name: String, on c: PostgresConnection) throws {
        try c.query("SELECT pgflow.delete_work_queue($1)", [name])
    }

    /// `pgflow.create_concurrency_limit`: creates or changes a global or tag limit; returns its id.
    @discardableResult
    public static func createConcurrencyLimit(_ name: String, limit: Int, active: Bool = true, on c: PostgresConnection) throws -> UUID {
        try c.query("SELECT pgflow.create_concurrency_limit($1, $2, $3)", [name, limit, active]).scalar(UUID.self)
    }

    /// `pgflow.delete_concurrency_limit`: whether it existed.
    public static func deleteConcurrencyLimit(_ name: String, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT pgflow.delete_concurrency_limit($1)", [name]).scalar(Bool.self)
    }

    /// `pgflow.reset_concurrency_limit`: releases the slots explicit leases hold (slots of runs in
    /// progress are kept, so the limit is never exceeded); returns how many.
    public static func resetConcurrencyLimit(_ name: String, on c: PostgresConnection) throws -> Int {
        try c.query("SELECT pgflow.reset_concurrency_limit($1)", [name]).scalar(Int.self)
    }
}
