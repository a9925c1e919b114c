import CPGFlowSpawn
import Foundation
import Logging
import PGFlowClient
import PGFlowPostgres
import Synchronization

/// The agent's liveness duty: heartbeats to the database, stops what it must no longer run, gives back
/// what it holds but does not run, and beats its commands' supervisors while all of that succeeds.
///
/// One pass (`runOnce`):
/// 1. `pgflow.heartbeat`: the database sees the agent alive; runs being cancelled are stopped.
/// 2. Ownership: a run the agent executes that the database no longer gives it (the reaper ended it:
///    the agent was frozen or cut off past the heartbeat timeout, another agent may run it now) is
///    stopped at once, with no state proposed.
/// 3. Reconcile: runs the database gives it that it does not execute (a lost claim or start reply) are
///    given back (Pending) or crashed (Running) once unchanged for `reconcileAfter`.
///
/// Only after a pass succeeds do the supervisors get beats (`beatLoop`): an agent that is frozen, dead
/// or cut off from the database stops beating, and each supervisor kills its command's process group
/// after the fence timeout, before the reaper may hand the run to another agent.
public final class AgentHeartbeat: Sendable {
    /// What one pass did.
    public struct Report: Sendable, Equatable {
        /// Runs being cancelled that were stopped (or ended Cancelled when they were not running).
        public var cancelled = 0
        /// Runs stopped because they are no longer this agent's.
        public var fenced = 0
        /// Runs given back or crashed because the agent held them without running them.
        public var reconciled = 0
    }

    let configuration: AgentConfiguration
    let pool: PostgresPool
    /// The agent's id.
    public let agentID: UUID
    let states: StateBatcher
    let running: RunningRuns
    let logger: Logger
    /// When the registration was sent, and the last successful pass (nil before the first), in
    /// `pgflow_monotonic_ms` (a clock that runs on while the process is stopped): each proved the agent
    /// alive to the database.
    private let registeredAt: Int64
    private let lastSuccess = Mutex<Int64?>(nil)
    /// The database's time at the last pass that followed a gap (the first pass, or one sent longer than
    /// the fresh window after the success before it): a run pushed before it may have been reaped or
    /// handed back while the agent was frozen or cut off, so its notification is not trusted.
    private let lastGapEnd = Mutex<Double>(.infinity)

    init(configuration: AgentConfiguration, pool: PostgresPool, agentID: UUID, states: StateBatcher, running: RunningRuns, logger: Logger,
         registeredAt: Int64 = pgflow_monotonic_ms()) {
        self.registeredAt = registeredAt
        self.configuration = configuration
        self.pool = pool
        self.agentID = agentID
        self.states = states
        self.running = running
        self.logger = logger
    }

    /// Passes every heartbeat interval until cancelled.
    func run() async {
        while !Task.isCancelled {
            do {
                try await runOnce()
            } catch {
                logger.warning("heartbeat failed: \(error)")
            }
            try? await Task.sleep(for: configuration.heartbeatInterval)
        }
    }

    /// One pass (see the type's documentation); throws when the database cannot be reached.
    @discardableResult
    public func runOnce() async throws -> Report {
        let sent = ContinuousClock.now  // (the handles' claim times are on this clock)
        let sentMilliseconds = pgflow_monotonic_ms()
        var report = Report()
        let agentID = self.agentID
        let beat = try await pool.withConnection { try PGFlowClient.heartbeatWithTime(agentID: agentID, on: $0) }
        let previous = lastSuccess.withLock { $0 }
        if previous.map({ sentMilliseconds - $0 >= freshMilliseconds }) ?? true {
            lastGapEnd.withLock { $0 = beat.now }
        }
        for id in beat.cancelling {
            report.cancelled += 1
            if let handle = running[id] {
                logger.info("cancelling run \(id)")
                await handle.stop(.cancelled, grace: configuration.killGracePeriod)
            } else {
                // Ours, Cancelling, and nothing of ours runs it (it ended meanwhile): end it Cancelled.
                _ = try await states.propose(StateProposal(runID: id, type: .cancelled, message: "cancelled; it was not running"))
            }
        }
        report.fenced = try await stopRunsNoLongerOurs(askedAt: sent)
        lastSuccess.withLock { $0 = sentMilliseconds }
        report.reconciled = try await reconcile()
        return report
    }

    /// Whether the last successful pass was sent within a heartbeat interval and a second: a run pushed
    /// to the agent is started from its notification only then (else the claim, which checks the agent
    /// is still online, returns it).
    var isFresh: Bool {
        guard let last = lastSuccess.withLock({ $0 }) else { return false }
        return pgflow_monotonic_ms() - last < freshMilliseconds
    }

    /// The fresh window: a heartbeat interval and a second.
    private var freshMilliseconds: Int64 { wholeMilliseconds(configuration.heartbeatInterval + .seconds(1)) }

    /// When the last call that proved the agent alive was sent: the last successful pass, or the registration.
    private var provenAt: Int64 { lastSuccess.withLock { $0 } ?? registeredAt }

    /// Until when (`pgflow_monotonic_ms`) a run this agent holds may still start: the last proof of
    /// liveness + the fresh window (while beats go out) + the fence timeout — when the supervisors and
    /// the beat loop stop everything, before the reaper may hand the agent's runs to another agent
    /// (`AgentConfiguration.fenceDeadline`). Past it a claimed or pushed run is not started: the agent
    /// was frozen or cut off since its claim, and the run may be another agent's by now.
    var startDeadline: Int64 {
        provenAt + freshMilliseconds + wholeMilliseconds(configuration.fenceTimeout)
    }

    /// Whether a run may start now (see `startDeadline`).
    var mayStart: Bool { pgflow_monotonic_ms() < startDeadline }

    /// Whether a run pushed to the agent may be started from its notification: the heartbeat is fresh
    /// and the push came after the last gap in it. Else the agent claims: the claim checks in the
    /// database and returns the run if it is still the agent's.
    func trusts(_ run: ClaimedFlowRun) -> Bool {
        guard isFresh, let at = run.pushedAt else { return false }
        return at > lastGapEnd.withLock { $0 }
    }

    /// Beats every command's supervisor about every second while the last proof of liveness (the
    /// registration, then each successful pass) is recent (within a heartbeat interval and a second);
    /// stops in-process flows once it is older than that plus the fence timeout (they have no
    /// supervisor) — also when no pass has succeeded since the registration. Runs until cancelled.
    func beatLoop() async {
        let period = min(Duration.seconds(1), configuration.fenceTimeout / 4)
        let fresh = Duration.milliseconds(freshMilliseconds)
        while !Task.isCancelled {
            let age = Duration.milliseconds(pgflow_monotonic_ms() - provenAt)
            if age < fresh {
                for handle in running.all { handle.beat() }
            } else if age > fresh + configuration.fenceTimeout {
                for handle in running.all where handle.isInProcess && handle.stopReason == nil && !handle.isSettled {
                    logger.warning("run \(handle.run.id): no successful heartbeat for \(age); stopping the in-process flow")
                    await handle.stop(.fenced, grace: configuration.killGracePeriod)
                }
            }
            try? await Task.sleep(for: period)
        }
    }

    /// Stops the runs this agent executes that the database no longer gives it; returns how many.
    private func stopRunsNoLongerOurs(askedAt: ContinuousClock.Instant) async throws -> Int {
        let agentID = self.agentID
        let held = Set(try await pool.withConnection { try PGFlowClient.agentHeldRuns(agentID: agentID, on: $0) })
        let lost = running.all.filter { h in
            h.claimedAt < askedAt && !held.contains(h.run.id) && !h.isSettled && h.stopReason == nil
        }
        if lost.isEmpty { return 0 }
        await withDiscardingTaskGroup { group in
            for handle in lost {
                logger.warning("run \(handle.run.id) is no longer this agent's (its heartbeat lapsed and it was reaped): stopping it")
                group.addTask { await handle.stop(.fenced, grace: self.configuration.killGracePeriod) }
            }
        }
        return lost.count
    }

    /// Runs the database says this agent holds, but that it does not execute: a claim or a start whose
    /// reply was lost to a broken connection. Pending ones go back to the queue, Running ones crash (and
    /// are retried per policy). Only runs unchanged for `reconcileAfter` are touched, so a claim in flight is safe.
    private func reconcile() async throws -> Int {
        let seconds = Double(configuration.reconcileAfter.components.seconds) + Double(configuration.reconcileAfter.components.attoseconds) / 1e18
        var count = 0
        let agentID = self.agentID
        // Runs unchanged for `reconcileAfter` can only come from claims sent longer ago than that. Such a
        // claim still in flight when the read is used may hold runs not in `running` yet: then the read is
        // not used (a few tries; else the next pass tries again). Claims settled by then have inserted theirs.
        var held: [(id: UUID, type: StateType)]? = nil
        for _ in 0..<20 {
            let read = try await pool.withConnection { try PGFlowClient.agentRuns(agentID: agentID, unchangedFor: seconds, on: $0) }
            if let oldest = running.oldestClaimInFlight, oldest < ContinuousClock.now - configuration.reconcileAfter {
                await pause(milliseconds: 10)
                continue
            }
            held = read
            break
        }
        guard let held else { return 0 }
        for (id, type) in held where running[id] == nil {
            let proposal: StateProposal
            if type == .pending {
                proposal = StateProposal(runID: id, type: .scheduled, message: "given back: agent \(configuration.name) lost its claim (a broken connection)")
            } else if !running.mayHaveRun(id) {
                // Started by a claim whose reply was lost (or never prepared): no process ran it.
                proposal = StateProposal(runID: id, type: .scheduled, name: "AwaitingRetry",
                                         message: "given back: agent \(configuration.name) lost the reply of the claim that started it (a broken connection); no process ran it")
            } else {
                proposal = StateProposal(runID: id, type: .crashed, message: "agent \(configuration.name) lost track of it (a broken connection or a fenced command)")
            }
            let result = try await states.propose(proposal)
            logger.warning("reconciled run \(id): \(result.status) \(result.stateName)")
            count += 1
        }
        return count
    }
}

/// A duration in whole milliseconds (rounded down).
func wholeMilliseconds(_ d: Duration) -> Int64 {
    d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
}
