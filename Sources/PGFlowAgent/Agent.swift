import CPGFlowSpawn
import Foundation
import Logging
import PGFlow
import PGFlowClient
import PGFlowPostgres
import PGFlowSecrets
import ServiceLifecycle
import Synchronization

/// The agent service: registers, claims due runs up to its free capacity, executes them, heartbeats,
/// stops cancelled runs, and on graceful shutdown stops claiming, lets running work finish within the
/// grace period, stops the rest and deregisters (Pending runs go back to the queue, stopped ones crash
/// and are retried per policy) — no run is left in Running.
///
/// Wake-ups: a NOTIFY on `pgflow_runs` naming one of its queues, a run finishing (capacity freed), or
/// the jittered poll. Cancels arrive on `pgflow_cancel` (and, as a fallback, from every heartbeat).
///
/// Pushes: a claim that comes back short offers the rest of the agent's capacity (`claim_and_offer`),
/// and `run_deployment` may then insert a due run Running for this agent and NOTIFY the agent's own
/// channel with it; the agent starts it from the notification, with no claim. The next claim names the
/// pushed runs it started (`p_seen`) and gets back any whose notification it never saw.
/// This type claims and executes; `AgentHeartbeat` keeps it alive, fenced and reconciled.
public final class Agent: Service, Sendable {
    /// The configuration.
    public let configuration: AgentConfiguration
    private let pool: PostgresPool
    private let flows: [String: AgentFlow]
    private let logger: Logger
    private let running = RunningRuns()
    private let pushed = PushedRuns()
    /// Whether the listener has listened once (offers are made only then).
    private let listenerReady = Mutex(false)
    private let registered = Mutex<AgentHeartbeat?>(nil)
    private let engine: PGFlowEngine

    /// Creates an agent over a pool (give it at least 3 connections) with optional in-process flows.
    public init(configuration: AgentConfiguration, pool: PostgresPool, flows: [AgentFlow] = [], logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        self.flows = Dictionary(flows.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        self.logger = logger
        self.engine = PGFlowEngine(pool: pool)
    }

    /// The agent's id once registered.
    public var agentID: UUID? { registered.withLock { $0?.agentID } }

    /// The heartbeat duty once registered (tests call its `runOnce()`).
    public var heartbeat: AgentHeartbeat? { registered.withLock { $0 } }

    /// Runs executing now.
    public var runningCount: Int { running.count }

    /// Runs until cancelled or gracefully shut down.
    public func run() async throws {
        try configuration.validate()
        let (name, queues) = (configuration.name, configuration.queues)
        let registeredAt = pgflow_monotonic_ms()
        let agentID = try await pool.withConnection { try PGFlowClient.registerAgent(name: name, queues: queues, on: $0) }
        logger.info("agent \(configuration.name) registered as \(agentID), serving \(configuration.queues.joined(separator: ", ")), limit \(configuration.limit)")
        let states = StateBatcher(pool: pool, agentID: agentID)
        let logs = LogBatcher(pool: pool, memoryBytes: configuration.logMemoryBytes, spillBytes: configuration.logSpillBytes)
        let heartbeat = AgentHeartbeat(configuration: configuration, pool: pool, agentID: agentID, states: states, running: running, logger: logger,
                                       registeredAt: registeredAt)
        registered.withLock { $0 = heartbeat }
        let wake = AgentWakeups()

        await withDiscardingTaskGroup { background in
            background.addTask { await states.run() }
            background.addTask { await logs.run() }
            background.addTask { await self.listen(agentID: agentID, heartbeat: heartbeat, wake: wake) }
            background.addTask { await heartbeat.run() }
            background.addTask { await heartbeat.beatLoop() }
            background.addTask { await self.poll(wake: wake) }

            await withDiscardingTaskGroup { executions in
                wake.claim()
                for await _ in wake.stream.cancelOnGracefulShutdown() {
                    let todo = wake.take()
                    if !todo.pushed.isEmpty {
                        // (checked again: frozen or cut off since the notification came, the claim checks)
                        let trusted = todo.pushed.filter { heartbeat.trusts($0) }
                        if trusted.count < todo.pushed.count { wake.claim() }
                        let handles = trusted.compactMap { run -> RunHandle? in
                            guard running.admits(run), pushed.start(run, pushed: true) else { return nil }
                            let handle = RunHandle(run: run)
                            running.insert(handle)
                            return handle
                        }
                        await start(handles, heartbeat: heartbeat, states: states, logs: logs, wake: wake, into: &executions)
                    }
                    if todo.claim {
                        await claim(agentID: agentID, heartbeat: heartbeat, states: states, logs: logs, wake: wake, into: &executions)
                    }
                }
                await shutDown(agentID: agentID, states: states)
            }
            states.finish()
            logs.finish()
            // the long-running listener, heartbeat and poll end with the group's cancellation
            background.cancelAll()
        }
        logger.info("agent \(configuration.name) stopped")
    }

    // MARK: Claiming

    private func claim(
        agentID: UUID, heartbeat: AgentHeartbeat, states: StateBatcher, logs: LogBatcher,
        wake: AgentWakeups, into executions: inout DiscardingTaskGroup
    ) async {
        while true {
            let free = configuration.limit - runningCount
            if free <= 0 { return }
            // No claim while what it returns could not start (no successful heartbeat for the fence
            // timeout: see `AgentHeartbeat.startDeadline`); the poll tries again, after a pass succeeds.
            if !heartbeat.mayStart { return }
            // The claimed runs are in `running` before the claim counts as settled, so that the
            // heartbeat's reconcile pass never takes them for runs of a lost claim reply.
            let claimed: [RunHandle]
            do {
                let (queues, max) = (configuration.queues, min(free, configuration.claimBatch))
                let seen = pushed.unacknowledged
                let offerFor = configuration.takesPushes && listenerReady.withLock { $0 } ? offerSeconds : nil
                claimed = try await running.claiming {
                    let runs = try await pool.withConnection {
                        try PGFlowClient.claimAndOffer(agentID: agentID, queues: queues, max: max, seen: seen, offerFor: offerFor, on: $0)
                    }
                    pushed.acknowledged(seen)
                    // a run pushed here whose notification was read meanwhile has started: not again
                    return runs.compactMap { run in
                        guard running.admits(run), pushed.start(run, pushed: run.pushed) else { return nil }
                        let handle = RunHandle(run: run)
                        running.insert(handle)
                        return handle
                    }
                }
            } catch let error as PostgresError where ["42703", "42883", "42P01"].contains(error.sqlState ?? "") {
                logger.error("claim failed: the database schema does not match this agent (run `pgflow db upgrade`): \(error)")
                return  // the next poll tries again
            } catch {
                logger.error("claim failed: \(error)")
                return  // the next poll tries again
            }
            if claimed.isEmpty { return }
            await start(claimed, heartbeat: heartbeat, states: states, logs: logs, wake: wake, into: &executions)
            if claimed.count < min(free, configuration.claimBatch) { return }
        }
    }

    /// How long an offer counts after a heartbeat: two heartbeat intervals and a second (1 s to 1 h).
    private var offerSeconds: Double {
        let interval = configuration.heartbeatInterval.components
        let seconds = Double(interval.seconds) + Double(interval.attoseconds) / 1e18
        return min(max(2 * seconds + 1, 1), 3600)
    }

    /// Starts runs the database gave this agent (claimed or pushed), each in the group.
    private func start(
        _ handles: [RunHandle], heartbeat: AgentHeartbeat, states: StateBatcher, logs: LogBatcher,
        wake: AgentWakeups, into executions: inout DiscardingTaskGroup
    ) async {
        if handles.isEmpty { return }
        let secrets = await secretEnvironments(for: handles.map(\.run))
        for handle in handles {
            let run = handle.run
            let execution = RunExecution(
                handle: handle, agentName: configuration.name, configuration: configuration, flows: flows,
                engine: engine, states: states, logs: logs, logger: logger, heartbeat: heartbeat,
                secrets: run.deploymentID.flatMap { secrets[$0] } ?? .success([:]))
            executions.addTask {
                let forget = await execution.execute()
                self.running.remove(handle, forget: forget)
                wake.claim()
            }
        }
    }

    /// The decrypted secret environments of the deployments of claimed command runs, by deployment
    /// (one query per claimed batch; deployments without one are absent). A failure to read or open
    /// them fails those runs (with the reason) rather than starting them without their variables.
    private func secretEnvironments(for runs: [ClaimedFlowRun]) async -> [UUID: Result<[String: String], SecretEnvironmentError>] {
        let deployments = Set(runs.compactMap { run -> UUID? in
            guard let entrypoint = run.entrypoint, !entrypoint.isEmpty, !entrypoint.hasPrefix("swift:") else { return nil }
            return run.deploymentID
        })
        if deployments.isEmpty { return [:] }
        var entries: [UUID: [(variable: String, secret: String, sealed: SealedSecret?)]] = [:]
        // A broken connection (a restarting database) is waited out, for up to the fence timeout: the
        // claimed runs are not failed for it. Past that, they are left to the reaper and reconciliation.
        let deadline = ContinuousClock.now + configuration.fenceTimeout
        var pause = Duration.milliseconds(100)
        while true {
            do {
                entries = try await pool.withConnection { c in try PGFlowClient.deploymentSecretEnvironments(Array(deployments), on: c) }
                break
            } catch let error as PostgresError where error.isConnectionFailure {
                if ContinuousClock.now + pause > deadline || Task.isCancelled {
                    let failure = Result<[String: String], SecretEnvironmentError>.failure(SecretEnvironmentError(
                        message: "could not read the deployment's secret environment: \(error)", transient: true))
                    return Dictionary(uniqueKeysWithValues: deployments.map { ($0, failure) })
                }
                logger.warning("reading the claimed runs' secret environments failed (\(error)); trying again in \(pause)")
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            } catch {
                let failure = Result<[String: String], SecretEnvironmentError>.failure(
                    SecretEnvironmentError(message: "could not read the deployment's secret environment: \(error)"))
                return Dictionary(uniqueKeysWithValues: deployments.map { ($0, failure) })
            }
        }
        let key = configuration.secretKey
        return entries.mapValues { list in
            Result {
                try SecretEnvironment.resolve(list, key: key)
            }.mapError { error in
                if case SecretError.noKey = error {
                    return SecretEnvironmentError(message: "the deployment's environment uses secrets (\(list.map(\.secret).joined(separator: ", "))) but agent \(configuration.name) has no secret key: start it with PGFLOW_SECRET_KEY or PGFLOW_SECRET_KEY_FILE set")
                }
                return SecretEnvironmentError(message: "the deployment's secret environment cannot be used: \(error)")
            }
        }
    }

    // MARK: Background duties

    private func listen(agentID: UUID, heartbeat: AgentHeartbeat, wake: AgentWakeups) async {
        let queues = Set(configuration.queues)
        var listening = pool.configuration
        if let url = configuration.listenDatabaseURL { listening.conninfo = url }
        let own = PGFlowClient.agentChannel(agentID)
        let events = PostgresListener.listen(configuration: listening, channels: ["pgflow_runs", "pgflow_cancel", own]) { c in
            // the session holds the agent's listener lock: pushes come only while it lives
            try PGFlowClient.agentListening(agentID: agentID, on: c)
        }
        for await event in events {
            switch event {
            case .listening:
                listenerReady.withLock { $0 = true }
                wake.claim()  // after a reconnect, look: notifications may have been missed
            case .notification(channel: own, let payload, _):
                // started from the notification only while the heartbeat is fresh and was so since the
                // push (a frozen agent's run may have been reaped or handed back meanwhile); else the
                // claim, which checks in the database, returns it
                if let run = ClaimedFlowRun(pushPayload: payload), heartbeat.trusts(run) {
                    wake.pushed(run)
                } else {
                    wake.claim()
                }
            case .notification(channel: "pgflow_runs", let queue, _) where queues.contains(queue):
                wake.claim()
            case .notification(channel: "pgflow_cancel", let payload, _):
                if let id = UUID(uuidString: payload) { await stop(runID: id) }
            case .notification:
                break
            }
        }
    }

    private func poll(wake: AgentWakeups) async {
        while !Task.isCancelled {
            let base = configuration.pollInterval
            try? await Task.sleep(for: base * Double.random(in: 0.8...1.2))
            wake.claim()
        }
    }

    /// Stops a run this agent executes; false when it executes no such run.
    @discardableResult
    private func stop(runID: UUID) async -> Bool {
        guard let handle = running[runID] else { return false }
        logger.info("cancelling run \(runID)")
        await handle.stop(.cancelled, grace: configuration.killGracePeriod)
        return true
    }

    // MARK: Shutdown

    /// Revokes the agent's offer, so nothing more is pushed to it, and gives back the runs pushed to it
    /// that it did not start (they go back to the queue: no process ran them). If this fails, deregistering
    /// revokes the offer, and such runs end as the agent's other runs do (Crashed, retried per policy).
    private func withdrawOffer(agentID: UUID, states: StateBatcher) async {
        let seen = pushed.unacknowledged
        do {
            let unseen = try await pool.withConnection { try PGFlowClient.withdrawOffer(agentID: agentID, seen: seen, on: $0) }
            for id in unseen where !pushed.started(id) && running[id] == nil {
                let result = try await states.propose(StateProposal(
                    runID: id, type: .scheduled, name: "AwaitingRetry",
                    message: "given back: pushed to agent \(configuration.name) as it shut down; no process ran it"))
                logger.info("gave back run \(id) pushed during shutdown: \(result.status) \(result.stateName)")
            }
        } catch {
            logger.error("could not withdraw the offer (deregistering revokes it): \(error)")
        }
    }

    private func shutDown(agentID: UUID, states: StateBatcher) async {
        await withdrawOffer(agentID: agentID, states: states)
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.shutdownGracePeriod
        if runningCount > 0 { logger.info("shutting down: waiting up to \(configuration.shutdownGracePeriod) for \(runningCount) run(s)") }
        while runningCount > 0, clock.now < deadline, !Task.isCancelled {
            await pause(milliseconds: 50)
        }
        let leftovers = running.all
        if !leftovers.isEmpty {
            logger.warning("shutting down: stopping \(leftovers.count) run(s) that did not finish in time")
            await withDiscardingTaskGroup { group in
                for handle in leftovers {
                    group.addTask { await handle.stop(.shutdown, grace: self.configuration.killGracePeriod) }
                }
            }
        }
        while runningCount > 0 { await pause(milliseconds: 20) }
        do {
            let changed = try await pool.withConnection { try PGFlowClient.deregisterAgent(agentID, on: $0) }
            if changed > 0 { logger.info("deregistered; \(changed) run(s) handed back or marked Crashed for retry") }
        } catch {
            logger.error("could not deregister (the reaper will clean up after the heartbeat timeout): \(error)")
        }
    }
}

/// Sleeps even in a cancelled task (shutdown must still wait for its runs to stop).
func pause(milliseconds: Int) async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(milliseconds)) { c.resume() }
    }
}
