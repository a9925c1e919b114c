// GET /: run activity over a window as bars by state, counts by state, late runs, failing deployments,
// and the health of work queues and agents. Every figure comes from one read-only SQL function or view.
import Foundation
import Hummingbird
import PGFlowClient

/// The windows the home page offers: name, seconds, bucket seconds.
let dashboardWindows: [(String, Int, Int)] = [("1h", 3600, 300), ("24h", 86400, 3600), ("7d", 7 * 86400, 6 * 3600), ("30d", 30 * 86400, 86400)]

/// Bar groups of the activity chart, bottom to top.
private let barOrder = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "CANCELLING", "PAUSED", "PENDING", "RUNNING", "SCHEDULED"]

extension DashboardRoutes {
    func addHomePage() {
        page("/") { request, _, viewer, c in
            let windowName = request.query("window") ?? "24h"
            guard let window = dashboardWindows.first(where: { $0.0 == windowName }) else {
                throw APIProblem(.badRequest, "window must be 1h, 24h, 7d or 30d")
            }
            let now = Date()
            // buckets aligned to the bucket size, so the bars stay put between refreshes
            let end = Date(timeIntervalSince1970: (floor(now.timeIntervalSince1970 / Double(window.2)) + 1) * Double(window.2))
            let since = end.addingTimeInterval(-Double(window.1))
            let activity = rows(try PGFlowJSON.runActivity(since: since, until: end, bucketSeconds: window.2, on: c))
            let counts = rows(try PGFlowJSON.runStateCounts(since: now.addingTimeInterval(-Double(window.1)), on: c))
            let late = rows(try PGFlowJSON.lateFlowRuns(limit: 10, on: c))
            let failing = rows(try PGFlowJSON.failingDeployments(since: now.addingTimeInterval(-Double(window.1)), limit: 10, on: c))
            let queues = rows(try PGFlowJSON.workQueues(on: c))
            let agents = rows(try PGFlowJSON.agents(on: c))

            var body = request.flash + "<h1>Dashboard</h1><nav class=\"actions\" aria-label=\"Window\">"
            for w in dashboardWindows {
                body += w.0 == windowName ? "<strong aria-current=\"true\">Last \(w.0)</strong>" : "<a href=\"/?window=\(w.0)\">Last \(w.0)</a>"
            }
            body += "</nav><div id=\"home\" data-live>"
            body += "<h2>Run activity</h2>" + self.activityChart(activity, since: since, window: window)
            body += "<h2>Runs by state <span class=\"muted\">(finished in the last \(windowName); others now)</span></h2>" + self.stateCounts(counts, window: windowName)
            body += "<div class=\"grid\"><section><h2>Late runs</h2>"
            body += table(["Run", "Deployment", "Queue", "Expected", "Late by"], late.map { r in
                [runLink(r.s("id"), r.s("name")), deploymentLink(r.s("deployment")), h(r.s("work_queue")), Format.when(r.date("expected_start_time")),
                 Format.duration(r.n("late_seconds"))]
            }, empty: "No late runs.")
            body += "</section><section><h2>Failing deployments <span class=\"muted\">(last \(windowName))</span></h2>"
            body += table(["Deployment", "Failed", "Finished", "Last failure"], failing.map { r in
                [deploymentLink(r.s("deployment")) + " " + stateBadge("FAILED", "Failing"), "<span class=\"num\">\(r.i("failed"))</span>",
                 "<span class=\"num\">\(r.i("finished"))</span>", Format.when(r.date("last_failure"))]
            }, empty: "No deployment failed.")
            body += "</section><section><h2>Work queues</h2>"
            body += table(["Queue", "Status", "Due", "Oldest due", "Running"], queues.map { q in
                let oldest = q.date("oldest_due").map { Format.duration(now.timeIntervalSince($0)) } ?? "—"
                return ["<a href=\"/work-queues#q-\(h(q.s("name")))\">\(h(q.s("name")))</a>", q.b("paused") ? stateBadge("PAUSED", "Paused") : "Active",
                        "<span class=\"num\">\(q.i("due"))</span>", oldest, "<span class=\"num\">\(q.i("running"))</span>"]
            }, empty: "No work queues.")
            body += "</section><section><h2>Agents</h2>"
            body += table(["Agent", "Status", "Last heartbeat", "Runs"], agents.prefix(10).map { a in
                [h(a.s("name")), self.agentStatus(a, now: now), Format.when(a.date("last_heartbeat_at")), "<span class=\"num\">\(a.i("active_runs"))</span>"]
            }, empty: "No agent has registered: start one with pgflow-agent --queue default.")
            body += "</section></div></div>"
            let since24 = "now() - interval '\(window.1) seconds'"
            body += sqlBox("""
                SELECT * FROM pgflow.run_activity(\(since24), now(), interval '\(window.2) seconds');
                SELECT * FROM pgflow.run_state_counts(\(since24));
                SELECT * FROM pgflow.late_flow_runs(10);
                SELECT * FROM pgflow.failing_deployments(\(since24), 10);
                SELECT * FROM pgflow.queue_status ORDER BY priority, name;
                SELECT * FROM pgflow.agent_status ORDER BY last_heartbeat_at DESC, id;
                """)
            _ = viewer
            return DashboardPage(title: "Dashboard", body: body, stream: "/api/stream")
        }
    }

    /// An agent's status, with "stale" when its heartbeat is older than two minutes.
    func agentStatus(_ a: Row, now: Date) -> String {
        let status = a.s("status")
        if status.lowercased() == "online", let beat = a.date("last_heartbeat_at"), now.timeIntervalSince(beat) > 120 {
            return stateBadge("CRASHED", "Online, no heartbeat for \(Format.duration(now.timeIntervalSince(beat)))")
        }
        return stateBadge(status.lowercased() == "online" ? "COMPLETED" : "CANCELLED", status.capitalized)
    }

    /// The bars (SVG, one group per bucket with a title naming its counts), a legend, and the same figures as a table.
    func activityChart(_ activity: [Row], since: Date, window: (String, Int, Int)) -> String {
        let buckets = window.1 / window.2
        var perBucket = [[String: Int]](repeating: [:], count: buckets)
        var totals: [String: Int] = [:]
        for r in activity {
            guard let at = r.date("bucket") else { continue }
            let index = Int((at.timeIntervalSince(since) / Double(window.2)).rounded(.down))
            guard (0..<buckets).contains(index) else { continue }
            let key = r.s("state_type") == "SCHEDULED" ? "SCHEDULED" : r.s("state_type")
            perBucket[index][key, default: 0] += r.i("runs")
            totals[key, default: 0] += r.i("runs")
        }
        let highest = max(1, perBucket.map { $0.values.reduce(0, +) }.max() ?? 1)
        let (width, height) = (buckets * 10, 100)
        var svg = "<svg class=\"chart\" viewBox=\"0 0 \(width) \(height)\" preserveAspectRatio=\"none\" role=\"img\" aria-labelledby=\"chart-title\"><title id=\"chart-title\">Runs per \(Format.duration(Double(window.2))) over the last \(window.0), by state</title>"
        for (i, bucket) in perBucket.enumerated() {
            var y = Double(height)
            let start = since.addingTimeInterval(Double(i * window.2))
            let label = bucket.isEmpty ? "no runs" : barOrder.compactMap { k in bucket[k].map { "\($0) \(k.capitalized)" } }.joined(separator: ", ")
            svg += "<g><title>\(h(Format.time.string(from: start))): \(h(label))</title>"
            for key in barOrder {
                guard let n = bucket[key], n > 0 else { continue }
                let hgt = Double(n) / Double(highest) * Double(height - 4)
                y -= hgt
                svg += String(format: "<rect class=\"b-%@\" x=\"%d\" y=\"%.2f\" width=\"8\" height=\"%.2f\"></rect>", key, i * 10 + 1, y, max(hgt, 0.5))
            }
            svg += "</g>"
        }
        svg += "</svg><div class=\"axis\"><span>\(Format.when(since))</span><span>now</span></div><ul class=\"legend\">"
        for key in barOrder where totals[key] != nil {
            svg += "<li>\(stateBadge(key, key.capitalized)) \(totals[key] ?? 0)</li>"
        }
        if totals.isEmpty { svg += "<li class=\"muted\">No runs in this window.</li>" }
        svg += "</ul>"
        return svg
    }

    /// Counts by state name, each a link to the runs listing filtered by it.
    func stateCounts(_ counts: [Row], window: String) -> String {
        var byName: [(String, String, Int)] = []
        for r in counts {
            if let i = byName.firstIndex(where: { $0.1 == r.s("state_name") }) { byName[i].2 += r.i("runs") }
            else { byName.append((r.s("state_type"), r.s("state_name"), r.i("runs"))) }
        }
        byName.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        if byName.isEmpty { return "<p class=\"muted\">No runs.</p>" }
        var out = "<ul class=\"counts\">"
        for (type, name, n) in byName {
            let terminal = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"].contains(type)
            let range = terminal ? "&range=\(window)" : ""
            out += "<li>\(stateBadge(type, name)) <a href=\"/flow-runs?state=\(urlEncode(name))\(range)\"><strong data-count=\"\(h(name))\">\(n)</strong></a></li>"
        }
        return out + "</ul>"
    }
}
