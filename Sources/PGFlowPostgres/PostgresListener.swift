import CLibPQ
import Foundation

/// Something that happened on a listening connection.
public enum PostgresListenerEvent: Sendable, Equatable {
    /// A `NOTIFY` arrived.
    case notification(channel: String, payload: String, senderPID: Int32)
    /// The connection was (re-)established and is listening. After a reconnect, notifications sent
    /// while it was down are lost: treat this as "something may have happened" and look.
    case listening
}

/// LISTEN/NOTIFY as an async sequence, on a dedicated connection and thread.
///
/// The thread sleeps in `poll` on the connection's socket (no busy polling) and on a wake-up pipe
/// used to stop it. When the connection breaks it reconnects with backoff, LISTENs again and yields
/// `.listening`. Stopping the iteration (or cancelling the consuming task) closes the connection.
public enum PostgresListener {
    /// Starts listening on `channels`; the first event is `.listening` once the LISTENs are in place.
    /// `prepare` runs on each new connection after its LISTENs and before `.listening` (an agent takes
    /// its listener lock there); when it throws, the connection is dropped and made again.
    public static func listen(
        configuration: PostgresConfiguration, channels: [String],
        prepare: (@Sendable (PostgresConnection) throws -> Void)? = nil
    ) -> AsyncStream<PostgresListenerEvent> {
        let (stream, continuation) = AsyncStream<PostgresListenerEvent>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let loop = ListenLoop(configuration: configuration, channels: channels, prepare: prepare, continuation: continuation)
        continuation.onTermination = { _ in loop.stop() }
        let thread = Thread { loop.run() }
        thread.name = "pgflow.listener"
        thread.start()
        return stream
    }
}

private final class ListenLoop: @unchecked Sendable {
    let configuration: PostgresConfiguration
    let channels: [String]
    let prepare: (@Sendable (PostgresConnection) throws -> Void)?
    let continuation: AsyncStream<PostgresListenerEvent>.Continuation
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let stopped = NSLock()
    private var isStopped = false

    init(
        configuration: PostgresConfiguration, channels: [String], prepare: (@Sendable (PostgresConnection) throws -> Void)?,
        continuation: AsyncStream<PostgresListenerEvent>.Continuation
    ) {
        self.configuration = configuration
        self.channels = channels
        self.prepare = prepare
        self.continuation = continuation
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    var shouldStop: Bool { stopped.withLock { isStopped } }

    func stop() {
        stopped.withLock { isStopped = true }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func run() {
        var backoff = 0.05
        while !shouldStop {
            do {
                let connection = try PostgresConnection(configuration: configuration)
                for channel in channels {
                    try connection.execute(script: "LISTEN \(try connection.quoteIdentifier(channel))")
                }
                try prepare?(connection)
                backoff = 0.05
                continuation.yield(.listening)
                try receive(on: connection)
            } catch {
                if shouldStop { break }
                sleep(seconds: backoff)
                backoff = min(backoff * 2, 2)
            }
        }
        continuation.finish()
    }

    /// Delivers notifications until the connection breaks (throws) or the loop is stopped (returns).
    private func receive(on connection: PostgresConnection) throws {
        deliver(from: connection)  // any that arrived while `prepare` ran
        while !shouldStop {
            var fds = [
                pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw connection.connectionError("poll failed")
            }
            if fds[1].revents != 0 { return }
            guard PQconsumeInput(connection.handle) == 1, connection.isOpen else {
                throw connection.connectionError("the listening connection broke")
            }
            deliver(from: connection)
        }
    }

    private func deliver(from connection: PostgresConnection) {
        while let n = PQnotifies(connection.handle) {
            let event = PostgresListenerEvent.notification(
                channel: String(cString: n.pointee.relname),
                payload: String(cString: n.pointee.extra),
                senderPID: n.pointee.be_pid)
            PQfreemem(n)
            continuation.yield(event)
        }
    }

    private func sleep(seconds: Double) {
        var fd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
        _ = poll(&fd, 1, Int32(seconds * 1000))
    }
}
