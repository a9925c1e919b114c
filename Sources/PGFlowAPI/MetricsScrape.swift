// /metrics: gauges read from the metrics views on each scrape (runs by state per deployment and queue,
// due runs and the oldest due run's age per queue, agents online, slots in use per limit), then the
// process's own metrics (request durations, from Hummingbird's MetricsMiddleware via swift-prometheus).
import Foundation
import Hummingbird
import NIOCore
import PGFlowClient
import PGFlowPostgres
import Prometheus

/// Renders the Prometheus text exposition.
struct MetricsScrape: Sendable {
    let pool: PostgresPool
    let registry: PrometheusCollectorRegistry

    func response() async throws -> Response {
        let snapshot = try await pool.withConnection { c in try PGFlowClient.metricsSnapshotJSON(on: c) }
        var text = Self.render(snapshot)
        text += registry.emitToString()
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func render(_ snapshotJSON: String) -> String {
        guard let s = (try? JSONSerialization.jsonObject(with: Data(snapshotJSON.utf8))) as? [String: Any] else { return "" }
        var out = ""
        func gauge(_ name: String, _ help: String, _ rows: [([(String, String)], Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for (labels, value) in rows {
                let l = labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
                out += "\(name)\(l.isEmpty ? "" : "{\(l)}") \(value)\n"
            }
        }
        let runs = (s["runs"] as? [[String: Any]]) ?? []
        func runRows(ended: Bool) -> [([(String, String)], Double)] {
            runs.filter { ($0["ended_last_hour"] as? Bool) == ended }.map {
                ([("deployment", str($0["deployment"])), ("work_queue", str($0["work_queue"])), ("state_type", str($0["state_type"])),
                  ("state_name", str($0["state_name"]))], num($0["runs"]))
            }
        }
        gauge("pgflow_flow_runs", "Flow runs not finished, by deployment, work queue and state", runRows(ended: false))
        gauge("pgflow_flow_runs_ended_last_hour", "Flow runs that ended in the last hour, by deployment, work queue and state", runRows(ended: true))
        let queues = (s["queues"] as? [[String: Any]]) ?? []
        gauge("pgflow_work_queue_due_runs", "Runs due now in a work queue", queues.map { ([("work_queue", str($0["work_queue"]))], num($0["due_runs"])) })
        gauge("pgflow_work_queue_oldest_due_age_seconds", "Age of the oldest due run in a work queue (0: none due)",
              queues.map { ([("work_queue", str($0["work_queue"]))], num($0["oldest_due_age_seconds"])) })
        gauge("pgflow_agents_online", "Agents online", [([], num(s["agents_online"]))])
        let limits = (s["limits"] as? [[String: Any]]) ?? []
        gauge("pgflow_concurrency_slots_in_use", "Slots in use per concurrency limit",
              limits.map { ([("limit", str($0["name"])), ("kind", str($0["kind"]))], num($0["slots_in_use"])) })
        gauge("pgflow_concurrency_limit", "Size of each concurrency limit",
              limits.map { ([("limit", str($0["name"])), ("kind", str($0["kind"]))], num($0["concurrency_limit"])) })
        return out
    }

    private static func str(_ v: Any?) -> String { (v as? String) ?? "" }
    private static func num(_ v: Any?) -> Double { (v as? NSNumber)?.doubleValue ?? 0 }
    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
