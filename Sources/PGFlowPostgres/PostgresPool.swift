import Dispatch
import Synchronization

/// A pool of PostgreSQL connections for async code.
///
/// Each connection has its own serial dispatch queue: the blocking libpq calls run there, never on
/// Swift's cooperative thread pool. The pool opens connections lazily, never holds more than
/// `maxConnections`, queues callers past that in FIFO order, and checks a connection's health (and
/// reconnects it after a terminated backend or a server restart) each time it lends it out.
public final class PostgresPool: Sendable {
    /// The configuration every connection uses.
    public let configuration: PostgresConfiguration
    /// The most connections open at once.
    public let maxConnections: Int

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Lease, any Error>
    }

    private struct State {
        var idle: [Lease] = []
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
        var highWater = 0
    }

    private let state = Mutex(State())

    /// Creates a pool; nothing connects until the first use.
    public init(configuration: PostgresConfiguration, maxConnections: Int = 8) {
        precondition(maxConnections > 0, "a pool needs at least one connection")
        self.configuration = configuration
        self.maxConnections = maxConnections
    }

    /// Connections open now, idle now, and the most ever open at once.
    public var statistics: (open: Int, idle: Int, highWater: Int) {
        state.withLock { ($0.open, $0.idle.count, $0.highWater) }
    }

    /// Runs `body` with a connection, on that connection's own thread.
    ///
    /// Put several statements (or a transaction) in one `body` to pay for one thread hop, not several.
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let lease = try await acquire()
        do {
            let value = try await lease.run { connection in
                try connection.ensureHealthy()
                return try body(connection)
            }
            release(lease)
            return value
        } catch {
            release(lease)
            throw error
        }
    }

    /// Runs `body` in a transaction (`BEGIN` … `COMMIT`, rolled back when it throws).
    public func withTransaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withConnection { try $0.withTransaction(body) }
    }

    /// Runs one statement with bound parameters.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) async throws -> PostgresResult {
        try await withConnection { try $0.query(sql, parameters) }
    }

    /// Runs statements in one round trip (see `PostgresConnection.pipeline`).
    public func pipeline(_ statements: [PostgresStatement]) async throws -> [PostgresResult] {
        try await withConnection { try $0.pipeline(statements) }
    }

    /// Closes idle connections and refuses new work; connections in use close when returned.
    public func close() {
        let (idle, waiters) = state.withLock { s -> ([Lease], [Waiter]) in
            s.closed = true
            defer { s.idle.removeAll(); s.waiters.removeAll() }
            s.open -= s.idle.count
            return (s.idle, s.waiters)
        }
        for lease in idle { lease.close() }
        for w in waiters { w.continuation.resume(throwing: PostgresError(kind: .usage, message: "the connection pool is closed")) }
    }

    // MARK: Leasing

    private func acquire() async throws -> Lease {
        // Fast path: an idle connection, no continuation needed.
        if let lease = state.withLock({ s in s.closed ? nil : s.idle.popLast() }) { return lease }
        enum Next { case lease(Lease), create, wait(UInt64), closed }
        let waiterID = state.withLock { s -> UInt64 in s.nextWaiterID += 1; return s.nextWaiterID }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                let next = state.withLock { s -> Next in
                    if s.closed { return .closed }
                    if let lease = s.idle.popLast() { return .lease(lease) }
                    if s.open < maxConnections {
                        s.open += 1
                        s.highWater = max(s.highWater, s.open)
                        return .create
                    }
                    s.waiters.append(Waiter(id: waiterID, continuation: continuation))
                    return .wait(waiterID)
                }
                switch next {
                case .lease(let lease): continuation.resume(returning: lease)
                case .create: continuation.resume(returning: Lease(configuration: configuration))
                case .wait: break
                case .closed: continuation.resume(throwing: PostgresError(kind: .usage, message: "the connection pool is closed"))
                }
            }
        } onCancel: {
            let waiter = state.withLock { s -> Waiter? in
                guard let i = s.waiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
                return s.waiters.remove(at: i)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func release(_ lease: Lease) {
        let (waiter, closeIt) = state.withLock { s -> (Waiter?, Bool) in
            if s.closed {
                s.open -= 1
                return (nil, true)
            }
            if !s.waiters.isEmpty { return (s.waiters.removeFirst(), false) }
            s.idle.append(lease)
            return (nil, false)
        }
        if closeIt { lease.close() }
        waiter?.continuation.resume(returning: lease)
    }
}

/// One pooled connection and the serial queue its blocking calls run on. The connection is opened
/// lazily on that queue, and re-opened there after a failed connect.
final class Lease: @unchecked Sendable {
    private let queue: DispatchQueue
    private let configuration: PostgresConfiguration
    private var connection: PostgresConnection?  // touched only on `queue`

    init(configuration: PostgresConfiguration) {
        self.configuration = configuration
        queue = DispatchQueue(label: "pgflow.postgres.connection")
    }

    /// Runs `body` on this connection's queue, connecting first if needed.
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                do {
                    let connection = try self.connection ?? PostgresConnection(configuration: self.configuration)
                    self.connection = connection
                    continuation.resume(returning: try body(connection))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    func close() {
        queue.async { self.connection = nil }
    }
}
