// ScheduleSync: makes a deployment's schedules those a deployment file lists. A schedule that is already
// there (same kind, expression, zone, parameters, active flag and anchor) is kept with its id, so its
// future runs keep their ids; the others are added, and stored ones the file no longer lists removed.
import Foundation
import PGFlowClient
import PGFlowPostgres

/// Which schedules to keep, add and remove.
public enum ScheduleSync {
    /// The outcome of comparing stored schedules with wanted ones.
    public struct Plan: Sendable, Equatable {
        /// Stored schedules the file still lists.
        public var kept: [UUID] = []
        /// Schedules to create.
        public var added: [ScheduleSpec] = []
        /// Stored schedules to delete.
        public var removed: [UUID] = []
    }

    /// Pairs each wanted schedule with an equal stored one (each stored one used once); pure.
    /// `wanted` carries parameters as PostgreSQL normalises JSON (`PGFlowClient.normalizedJSON`).
    public static func plan(stored: [StoredSchedule], wanted: [ScheduleSpec]) -> Plan {
        var plan = Plan()
        var left = stored
        for spec in wanted {
            if let i = left.firstIndex(where: { matches($0, spec) }) {
                plan.kept.append(left.remove(at: i).id)
            } else {
                plan.added.append(spec)
            }
        }
        plan.removed = left.map(\.id)
        return plan
    }

    /// True when the stored schedule is the one the spec describes.
    public static func matches(_ stored: StoredSchedule, _ spec: ScheduleSpec) -> Bool {
        guard stored.kind == spec.kind, stored.timeZone == spec.timeZone, stored.parametersJSON == spec.parametersJSON,
              stored.active == spec.active else { return false }
        switch spec.kind {
        case "interval":
            guard let seconds = stored.intervalSeconds, let wanted = intervalSeconds(spec.expression),
                  abs(seconds - wanted) < 0.000_5 else { return false }
        case "cron":
            guard stored.expression.trimmingCharacters(in: .whitespaces) == spec.expression.trimmingCharacters(in: .whitespaces) else { return false }
        default:
            guard stored.expression == spec.expression else { return false }
        }
        if let anchor = spec.anchorDate {
            guard let storedAnchor = stored.anchorDate else { return false }
            return abs(storedAnchor.timeIntervalSince(anchor)) < 0.000_5
        }
        // Without an anchor in the file an interval keeps the one it got when created (its phase).
        return spec.kind == "interval" || stored.anchorDate == nil
    }

    /// Applies the plan for one deployment on `c` (inside the caller's transaction).
    @discardableResult
    public static func apply(deployment: String, wanted: [ScheduleSpec], on c: PostgresConnection) throws -> Plan {
        let stored = try PGFlowClient.storedSchedules(deployment: deployment, on: c)
        var normalized = wanted
        for i in normalized.indices { normalized[i].parametersJSON = try PGFlowClient.normalizedJSON(normalized[i].parametersJSON, on: c) }
        let plan = plan(stored: stored, wanted: normalized)
        for spec in plan.added { try PGFlowClient.createDeploymentSchedule(deployment: deployment, spec, on: c) }
        for id in plan.removed { try PGFlowClient.deleteDeploymentSchedule(id, on: c) }
        return plan
    }

    /// The seconds of an interval expression as DeploymentFile writes it (`5400.0 seconds`).
    static func intervalSeconds(_ expression: String) -> Double? {
        Double(expression.split(separator: " ").first ?? "")
    }
}
