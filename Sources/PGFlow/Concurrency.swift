import Foundation
import PGFlowClient

/// Runs `body` while holding `slots` slots of each named global concurrency limit
/// (`pgflow.create_concurrency_limit('external-api', 5)`), shared by every process on the database.
///
/// The slots are a lease in `pgflow.concurrency_slots`: renewed while `body` runs, released when it
/// returns or throws, and expiring by themselves `lease` after the last renewal if the process dies.
/// Waits (polling with backoff) while a limit is full, at most `timeout` (nil: forever).
///
/// ```swift
/// let page = try await concurrency("external-api", occupy: 1) { try await http.get(url) }
/// ```
public func concurrency<T>(
    _ names: String..., occupy slots: Int = 1, lease: Duration = .seconds(60), timeout: Duration? = nil,
    _ body: () async throws -> T
) async throws -> T {
    let engine = try FlowRunScope.current?.engine ?? PGFlowEngine.resolve()
    let pool = engine.pool
    let holder = FlowRunScope.taskRun?.id ?? FlowRunScope.current?.flowRunID
    let leaseSeconds = lease.seconds
    let clock = ContinuousClock()
    let deadline = timeout.map { clock.now + $0 }
    var pause = 25
    var leaseID: UUID?
    while true {
        leaseID = try await pool.withConnection {
            try PGFlowClient.acquireConcurrencySlots(names: names, slots: slots, leaseSeconds: leaseSeconds, holderID: holder, on: $0)
        }
        if leaseID != nil { break }
        if let deadline, clock.now >= deadline {
            throw FlowRunError.rejected("no free slot in concurrency limit \(names.joined(separator: ", ")) within \(timeout!.seconds) s")
        }
        try await Task.sleep(for: .milliseconds(pause))
        pause = min(pause * 2, 1_000)
    }
    let id = leaseID!
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            while true {
                try await Task.sleep(for: .milliseconds(Int(leaseSeconds * 1000 / 3)))
                _ = try? await pool.withConnection { try PGFlowClient.renewConcurrencyLease(id, leaseSeconds: leaseSeconds, on: $0) }
            }
        }
        do {
            let value = try await body()
            group.cancelAll()
            _ = try? await pool.withConnection { try PGFlowClient.releaseConcurrencySlots(id, on: $0) }
            return value
        } catch {
            group.cancelAll()
            _ = try? await pool.withConnection { try PGFlowClient.releaseConcurrencySlots(id, on: $0) }
            throw error
        }
    }
}
