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
/// This type claims and executes; `AgentHeartbeat` keeps it alive, fenced and reconciled.
public final class Agent: Service, Sendable {
    /// The configuration.
    public let configuration: AgentConfiguration
    private let pool: PostgresPool
    private let flows: [String: AgentFlow]
    private let logger: Logger
    private let running = RunningRuns()
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
        let agentID = try await pool.withConnection { try PGFlowClient.registerAgent(name: name, queues: queues, on: $0) }
        logger.info("agent \(configuration.name) registered as \(agentID), serving \(configuration.queues.joined(separator: ", ")), limit \(configuration.limit)")
        let states = StateBatcher(pool: pool, agentID: agentID)
        let logs = LogBatcher(pool: pool, memoryBytes: configuration.logMemoryBytes, spillBytes: configuration.logSpillBytes)
        let heartbeat = AgentHeartbeat(configuration: configuration, pool: pool, agentID: agentID, states: states, running: running, logger: logger)
        registered.withLock { $0 = heartbeat }
        let wake = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

        await withDiscardingTaskGroup { background in
            background.addTask { await states.run() }
            background.addTask { await logs.run() }
            background.addTask { await self.listen(wake: wake.continuation) }
            background.addTask { await heartbeat.run() }
            background.addTask { await heartbeat.beatLoop() }
            background.addTask { await self.poll(wake: wake.continuation) }

            await withDiscardingTaskGroup { executions in
                wake.continuation.yield()
                for await _ in wake.stream.cancelOnGracefulShutdown() {
                    await claim(agentID: agentID, states: states, logs: logs, wake: wake.continuation, into: &executions)
                }
                await shutDown(agentID: agentID)
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
        agentID: UUID, states: StateBatcher, logs: LogBatcher,
        wake: AsyncStream<Void>.Continuation, into executions: inout DiscardingTaskGroup
    ) async {
        while true {
            let free = configuration.limit - runningCount
            if free <= 0 { return }
            // The claimed runs are in `running` before the claim counts as settled, so that the
            // heartbeat's reconcile pass never takes them for runs of a lost claim reply.
            let claimed: [RunHandle]
            do {
                let (queues, max) = (configuration.queues, min(free, configuration.claimBatch))
                claimed = try await running.claiming {
                    let runs = try await pool.withConnection {
                        try PGFlowClient.claimFlowRuns(agentID: agentID, queues: queues, max: max, start: true, on: $0)
                    }
                    return runs.map { run in
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
            let secrets = await secretEnvironments(for: claimed.map(\.run))
            for handle in claimed {
                let run = handle.run
                let execution = RunExecution(
                    handle: handle, agentName: configuration.name, configuration: configuration, flows: flows,
                    engine: engine, states: states, logs: logs, logger: logger,
                    secrets: run.deploymentID.flatMap { secrets[$0] } ?? .success([:]))
                executions.addTask {
                    let forget = await execution.execute()
                    self.running.remove(run.id, forget: forget)
                    wake.yield()
                }
            }
            if claimed.count < min(free, configuration.claimBatch) { return }
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

    private func listen(wake: AsyncStream<Void>.Continuation) async {
        let queues = Set(configuration.queues)
        var listening = pool.configuration
        if let url = configuration.listenDatabaseURL { listening.conninfo = url }
        for await event in PostgresListener.listen(configuration: listening, channels: ["pgflow_runs", "pgflow_cancel"]) {
            switch event {
            case .listening:
                wake.yield()  // after a reconnect, look: notifications may have been missed
            case .notification(channel: "pgflow_runs", let queue, _) where queues.contains(queue):
                wake.yield()
            case .notification(channel: "pgflow_cancel", let payload, _):
                if let id = UUID(uuidString: payload) { await stop(runID: id) }
            case .notification:
                break
            }
        }
    }

    private func poll(wake: AsyncStream<Void>.Continuation) async {
        while !Task.isCancelled {
            let base = configuration.pollInterval
            try? await Task.sleep(for: base * Double.random(in: 0.8...1.2))
            wake.yield()
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

    private func shutDown(agentID: UUID) async {
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
