// NotificationSender: delivers the webhook notifications automations queue (docs/events.md). It
// LISTENs on `pgflow_notifications` and polls; each look claims due deliveries (SKIP LOCKED, each
// leased, so many senders share them and a dead sender's deliveries come back), POSTs them signed with
// HMAC-SHA256 and records each attempt: delivered, due again after the target's backoff (doubling per
// attempt), or a dead letter after the target's max_attempts (`pgflow notification dead-letters`).
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import PGFlowSecrets
import ServiceLifecycle

/// Sends queued webhook notifications.
public struct NotificationSender: Service, Sendable {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// Deliveries claimed (and sent at once) per look, default 20.
        public var batchSize = 20
        /// Seconds a claimed delivery is leased to this sender (default 60).
        public var lease: Double = 60
        /// Seconds a POST may take per step (connect, send, answer), default 10.
        public var timeout: Double = 10
        /// A PEM bundle of certificate authorities trusted for https targets instead of the system's
        /// (for receivers with a private CA); nil uses the system's.
        public var caFile: String?
        /// The key that opens the secrets targets name for their URL or signing key (PGFLOW_SECRET_KEY);
        /// nil: such targets fail each attempt with a message saying so.
        public var secretKey: SecretKey?
        /// Seconds between looks when no NOTIFY arrives (default 0.5: retries fall due between NOTIFYs).
        public var pollInterval: Double = 0.5
        /// The URL of its LISTEN connection (nil: the pool's). LISTEN needs a session: behind a
        /// transaction-mode PgBouncer, PostgreSQL's own URL (`pgflow-scheduler --listen-database-url`).
        public var listenDatabaseURL: String?

        /// The defaults.
        public init() {}

        /// Throws a one-line error for settings that cannot work.
        public func validate() throws(SchedulerConfigurationError) {
            guard (1...1000).contains(batchSize) else {
                throw SchedulerConfigurationError("the notification batch size must be 1 to 1000, got \(batchSize)")
            }
            try requirePositive(timeout, "the webhook timeout")
            try requirePositive(pollInterval, "the notification poll interval")
            guard lease > timeout * 3 else {
                throw SchedulerConfigurationError("the notification lease (\(lease) s) must exceed 3 webhook timeouts (\(timeout * 3) s)")
            }
        }
    }

    /// What one look did.
    public struct Counts: Sendable, Equatable {
        /// Deliveries that reached their receiver, failed (to be retried), and went dead.
        public var delivered = 0, retrying = 0, dead = 0
    }

    /// The settings.
    public let configuration: Configuration
    private let pool: PostgresPool
    private let logger: Logger

    /// Creates the service.
    public init(configuration: Configuration = .init(), pool: PostgresPool, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.logger = logger
    }

    /// Sends on every wake-up until the service group shuts down.
    public func run() async throws {
        try configuration.validate()
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        try? await cancelWhenGracefulShutdown { [self] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [pool, configuration] in
                    var listening = pool.configuration
                    if let url = configuration.listenDatabaseURL { listening.conninfo = url }
                    for await _ in PostgresListener.listen(configuration: listening, channels: ["pgflow_notifications"]) {
                        wake.yield()
                    }
                }
                group.addTask { [configuration] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(Int(configuration.pollInterval * 1000)))
                        wake.yield()
                    }
                }
                group.addTask { [self] in
                    for await _ in wakes {
                        if Task.isCancelled { break }
                        do {
                            while true {
                                let c = try await runOnce()
                                if c.delivered + c.retrying + c.dead > 0 {
                                    logger.info("notifications: \(c.delivered) delivered, \(c.retrying) to retry, \(c.dead) dead")
                                }
                                if c.delivered + c.retrying + c.dead < configuration.batchSize { break }
                            }
                        } catch is CancellationError {
                            break
                        } catch {
                            logger.error("notification sender failed (retrying at the next wake-up): \(error)")
                        }
                    }
                }
                await group.next()
                group.cancelAll()
                wake.finish()
            }
        }
    }

    /// Why a delivery's credentials cannot be had.
    struct CredentialFailure: Error { var message: String }

    /// A delivery's URL and signing key, its secrets opened with `key`.
    static func credentials(_ d: NotificationDelivery, key: SecretKey?) -> Result<(url: String, key: String?), CredentialFailure> {
        func open(_ name: String, _ sealed: SealedSecret?, _ what: String) throws(CredentialFailure) -> String {
            guard let sealed else {
                throw CredentialFailure(message: "the secret \(name) holding target \(d.target)'s \(what) no longer exists: store it with `pgflow secret set \(name)`")
            }
            guard let key else {
                throw CredentialFailure(message: "target \(d.target)'s \(what) is the secret \(name): start pgflow-scheduler with PGFLOW_SECRET_KEY or PGFLOW_SECRET_KEY_FILE")
            }
            do { return try SecretStore(key: key).open(sealed).trimmingCharacters(in: .whitespacesAndNewlines) } catch {
                throw CredentialFailure(message: "target \(d.target)'s \(what): \(error)")
            }
        }
        do {
            var url = d.url ?? "", signingKey = d.signingKey
            if let name = d.urlSecret { url = try open(name, d.urlSealed, "URL") }
            if let name = d.signingKeySecret { signingKey = try open(name, d.signingKeySealed, "signing key") }
            return .success((url, signingKey))
        } catch {
            return .failure(error)
        }
    }

    /// One look: claims due deliveries, POSTs them at once, records each attempt.
    @discardableResult
    public func runOnce() async throws -> Counts {
        let claimed = try await pool.withConnection { [configuration] c in
            try PGFlowClient.claimNotifications(limit: configuration.batchSize, lease: configuration.lease, on: c)
        }
        let responses = await withTaskGroup(of: (Int64, WebhookResponse).self) { group in
            for d in claimed {
                group.addTask { [configuration] in
                    let resolved: (url: String, key: String?)
                    switch Self.credentials(d, key: configuration.secretKey) {
                    case .success(let r): resolved = r
                    case .failure(let why): return (d.id, .failure(why.message))
                    }
                    var headers = [("X-PGFlow-Delivery", String(d.id)), ("X-PGFlow-Attempt", String(d.attempt))]
                    if let key = resolved.key { headers.append(("X-PGFlow-Signature", WebhookPoster.signature(body: d.body, key: key))) }
                    let response = await WebhookPoster.post(url: resolved.url, body: d.body, headers: headers, timeout: configuration.timeout,
                                                            caFile: configuration.caFile)
                    // a URL kept in a secret is a credential: it never reaches last_error or the log
                    if let name = d.urlSecret, case .failure(let why) = response {
                        return (d.id, .failure(why.replacingOccurrences(of: resolved.url, with: "secret:\(name)")))
                    }
                    return (d.id, response)
                }
            }
            var all: [(Int64, WebhookResponse)] = []
            for await r in group { all.append(r) }
            return all
        }
        var counts = Counts()
        for (id, response) in responses {
            let status = try await pool.withConnection { c in
                try PGFlowClient.recordNotificationAttempt(id: id, delivered: response.delivered,
                                                           error: response.delivered ? nil : response.description, on: c)
            }
            switch status {
            case "delivered": counts.delivered += 1
            case "dead":
                counts.dead += 1
                logger.warning("notification \(id) is a dead letter after its last attempt failed (\(response.description)); `pgflow notification retry \(id)` sends it again")
            default: counts.retrying += 1
            }
        }
        return counts
    }
}
