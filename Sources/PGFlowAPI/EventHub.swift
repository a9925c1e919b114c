// The live stream's one LISTEN connection per process, fanned out to the SSE clients of this process.
// Notifications name rows (`run:id` pairs, see 0005_api.sql); the hub reads the named state rows once
// per notification and a run's new log lines once per notification, and hands each client what its
// filter selects. Any replica sees every change: the NOTIFYs come from the database. While it has
// clients, the hub holds a lease row (pgflow.stream_listeners) without which the database sends no
// stream NOTIFYs at all; it takes the lease before a client's backlog is read and renews it each tick.
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import ServiceLifecycle

/// What an SSE client wants.
struct StreamFilter: Sendable {
    /// Only this run's events.
    var flowRun: UUID?
    /// Only runs of this deployment (`flow/deployment`).
    var deployment: String?
    /// Also the run's log lines (needs `flowRun`).
    var logs = false

    func wantsState(_ e: StreamEvent) -> Bool {
        (flowRun == nil || e.flowRunID == flowRun) && (deployment == nil || e.deployment == deployment)
    }
}

/// Something for an SSE client: an event, or a keep-alive tick.
enum StreamMessage: Sendable {
    case event(StreamEvent)
    case keepAlive
}

/// The Service owning the LISTEN connection and the subscribers.
actor EventHub: Service {
    private struct Subscriber {
        let filter: StreamFilter
        let continuation: AsyncStream<StreamMessage>.Continuation
        var lastLogID: Int64
    }

    private let pool: PostgresPool
    private let configuration: PostgresConfiguration
    private let keepAlive: Duration
    private let logger: Logger
    private var subscribers: [UUID: Subscriber] = [:]
    private var stopped = false
    private var listening = false
    private let leaseID = UUID()
    private var listeningWaiters: [CheckedContinuation<Void, Never>] = []

    init(pool: PostgresPool, configuration: PostgresConfiguration, keepAlive: Duration, logger: Logger) {
        self.pool = pool
        self.configuration = configuration
        self.keepAlive = keepAlive
        self.logger = logger
    }

    /// Returns once the LISTEN is in place (so a client subscribed after this misses no notification).
    func waitUntilListening() async {
        if listening || stopped { return }
        await withCheckedContinuation { listeningWaiters.append($0) }
    }

    /// Registers a client (taking the listener lease first); its stream ends when the hub stops. Call
    /// `unsubscribe` when the client leaves.
    func subscribe(_ filter: StreamFilter, lastLogID: Int64) async throws -> (UUID, AsyncStream<StreamMessage>) {
        try await renewLease()
        let (stream, continuation) = AsyncStream<StreamMessage>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let id = UUID()
        if stopped { continuation.finish() } else { subscribers[id] = Subscriber(filter: filter, continuation: continuation, lastLogID: lastLogID) }
        return (id, stream)
    }

    /// Forgets a client.
    func unsubscribe(_ id: UUID) {
        subscribers.removeValue(forKey: id)?.continuation.finish()
    }

    /// Clients connected to this process.
    var count: Int { subscribers.count }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen() }
            group.addTask { await self.tick() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        stopAll()
        let id = leaseID
        _ = try? await pool.withConnection { c in try PGFlowClient.dropStreamListener(id, on: c) }
    }

    private var leaseSeconds: Double { max(60, 4 * Double(keepAlive.components.seconds)) }

    private func renewLease() async throws {
        let (id, seconds) = (leaseID, leaseSeconds)
        try await pool.withConnection { c in try PGFlowClient.renewStreamListener(id, leaseSeconds: seconds, on: c) }
    }

    private func stopAll() {
        stopped = true
        for w in listeningWaiters { w.resume() }
        listeningWaiters.removeAll()
        for s in subscribers.values { s.continuation.finish() }
        subscribers.removeAll()
    }

    private func listen() async {
        let events = PostgresListener.listen(configuration: configuration, channels: ["pgflow_stream_states", "pgflow_stream_logs"])
        for await event in events {
            if Task.isCancelled { break }
            if case .listening = event {
                // After a reconnect, notifications sent meanwhile are lost: end the streams, so clients
                // reconnect with Last-Event-ID and read what they missed from the tables.
                if listening {
                    for s in subscribers.values { s.continuation.finish() }
                    subscribers.removeAll()
                }
                listening = true
                for w in listeningWaiters { w.resume() }
                listeningWaiters.removeAll()
                continue
            }
            guard case .notification(let channel, let payload, _) = event, !subscribers.isEmpty else { continue }
            let keys = Self.parse(payload)
            do {
                if channel == "pgflow_stream_states" { try await deliverStates(keys) } else { try await deliverLogs(keys) }
            } catch {
                logger.warning("live stream: reading \(channel) rows failed: \(error)")
            }
        }
    }

    private func tick() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: keepAlive)
            if subscribers.isEmpty { continue }
            for s in subscribers.values { s.continuation.yield(.keepAlive) }
            do { try await renewLease() } catch { logger.warning("live stream: renewing the listener lease failed: \(error)") }
        }
    }

    /// `run:id,run:id,…` into pairs (malformed parts are skipped).
    static func parse(_ payload: String) -> [(run: UUID, id: Int64)] {
        payload.split(separator: ",").compactMap { part in
            let pieces = part.split(separator: ":")
            guard pieces.count == 2, let run = UUID(uuidString: String(pieces[0])), let id = Int64(pieces[1]) else { return nil }
            return (run, id)
        }
    }

    private func deliverStates(_ keys: [(run: UUID, id: Int64)]) async throws {
        let wanted = keys.filter { key in subscribers.values.contains { $0.filter.flowRun == nil || $0.filter.flowRun == key.run } }
        if wanted.isEmpty { return }
        let events = try await pool.withConnection { c in try PGFlowClient.stateEvents(wanted, on: c) }
        for e in events {
            for s in subscribers.values where s.filter.wantsState(e) { s.continuation.yield(.event(e)) }
        }
    }

    private func deliverLogs(_ keys: [(run: UUID, id: Int64)]) async throws {
        for key in keys {
            let ids = subscribers.filter { $0.value.filter.logs && $0.value.filter.flowRun == key.run && $0.value.lastLogID < key.id }
            guard let after = ids.values.map(\.lastLogID).min() else { continue }
            let run = key.run
            let lines = try await pool.withConnection { c in try PGFlowClient.logEvents(flowRun: run, after: after, limit: 1000, on: c) }
            for (id, s) in ids {
                for line in lines where line.id > s.lastLogID { s.continuation.yield(.event(line)) }
                subscribers[id]?.lastLogID = max(s.lastLogID, lines.last?.id ?? s.lastLogID)
            }
        }
    }
}
