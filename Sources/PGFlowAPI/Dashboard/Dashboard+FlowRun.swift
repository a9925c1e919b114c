// GET /flow-runs/{id}: one run: its state timeline, its task runs as a timeline (subflows nested,
// retries counted), its logs (live, filtered by level), parameters, result and artifacts; and
// POST /flow-runs/{id}: Cancel, Retry, Resume or Delete it (the API's client functions).
import Foundation
import Hummingbird
import PGFlowClient

let logLevels: [(Int, String)] = [(0, "All"), (10, "DEBUG"), (20, "INFO"), (30, "WARNING"), (40, "ERROR"), (50, "CRITICAL")]

extension DashboardRoutes {
    func addFlowRunDetail() {
        page("/flow-runs/{id}") { request, context, viewer, c in
            let id = try context.pathUUID("id")
            let run = row(try PGFlowJSON.flowRun(id, on: c))
            let states = rows(try PGFlowJSON.flowRunStates(id, on: c))
            let tasks = rows(try PGFlowJSON.taskTimeline(id, on: c))
            let minLevel = try request.intQuery("level", default: 0)
            let logs = rows(try PGFlowJSON.flowRunLogs(id, after: 0, limit: 1000, on: c)).filter { $0.i("level") >= minLevel }
            let artifacts = rows(try PGFlowJSON.artifacts(flowRun: id, limit: 50, on: c))
            var parent: Row? = nil
            if let parentTask = run["parent_task_run_id"] as? String, let taskID = UUID(uuidString: parentTask) {
                parent = try PGFlowJSON.taskRun(taskID, on: c).map(row)
            }
            let idText = id.uuidString.lowercased()
            let type = run.s("state_type")

            var body = request.flash + "<div id=\"run-head\" data-live><h1>\(h(run.s("name"))) \(stateBadge(type, run.s("state_name")))</h1>"
            if !run.s("state_message").isEmpty { body += "<p class=\"muted\">\(h(run.s("state_message")))</p>" }
            if viewer.canRun {
                body += "<form method=\"post\" action=\"/flow-runs/\(idText)\" class=\"actions\" aria-label=\"Run actions\">" + viewer.formFields(next: "/flow-runs/\(idText)")
                if ["SCHEDULED", "PENDING", "RUNNING", "PAUSED"].contains(type) { body += "<button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button>" }
                if type == "PAUSED" { body += "<button type=\"submit\" name=\"action\" value=\"resume\">Resume</button>" }
                if ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"].contains(type) { body += "<button type=\"submit\" name=\"action\" value=\"retry\">Retry</button>" }
                if !["PENDING", "RUNNING", "PAUSED", "CANCELLING"].contains(type) {
                    body += "<button type=\"submit\" name=\"action\" value=\"delete\" class=\"danger\" data-confirm=\"Delete this run with its states, task runs and logs?\">Delete</button>"
                }
                body += "</form>"
            }
            body += "<dl class=\"meta\">"
            let deployment = run.s("deployment").isEmpty ? "<span class=\"muted\">—</span>" : deploymentLink(run.s("flow") + "/" + run.s("deployment"))
            let items: [(String, String)] = [
                ("Flow", h(run.s("flow"))), ("Deployment", deployment), ("Work queue", h(run.s("work_queue"))),
                ("Id", "<code>\(h(idText))</code>"), ("Created", Format.when(run.date("created_at"))),
                ("Expected start", Format.when(run.date("expected_start_time"))), ("Started", Format.when(run.date("start_time"))),
                ("Ended", Format.when(run.date("end_time"))), ("Duration", Format.runDuration(run)), ("Run count", "\(run.i("run_count"))"),
                ("Tags", h((run["tags"] as? [String] ?? []).joined(separator: ", "))),
            ]
            for (k, v) in items { body += "<dt>\(k)</dt><dd>\(v)</dd>" }
            if let parent { body += "<dt>Parent run</dt><dd>\(runLink(parent.s("flow_run_id"), "parent run")) (task \(h(parent.s("name"))))</dd>" }
            body += "</dl>"

            body += "<h2>State timeline</h2><ol class=\"states\">"
            for s in states {
                body += "<li>\(Format.when(s.date("timestamp"))) \(stateBadge(s.s("state_type"), s.s("state_name")))"
                if !s.s("message").isEmpty { body += " <span class=\"muted\">\(h(s.s("message")))</span>" }
                body += "</li>"
            }
            body += "</ol>"
            body += "<h2>Task runs</h2>" + self.taskTimeline(tasks, run: run) + "</div>"

            body += "<h2 id=\"logs-title\">Logs</h2><form method=\"get\" class=\"filters\"><label>Lowest level<select name=\"level\" id=\"log-level\">"
            for (n, label) in logLevels { body += "<option value=\"\(n)\"\(n == minLevel ? " selected" : "")>\(label)</option>" }
            body += "</select></label><button type=\"submit\" id=\"log-filter-go\">Show</button></form>"
            body += "<div class=\"scroll\"><table class=\"logs\" aria-labelledby=\"logs-title\"><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Level</th><th scope=\"col\">Logger</th><th scope=\"col\">Message</th></tr></thead><tbody id=\"log-lines\">"
            for l in logs {
                let level = l.i("level")
                body += "<tr id=\"log-\(l.i("id"))\" data-level=\"\(level)\" class=\"lv-\(level)\"><td>\(Format.when(l.date("timestamp")))</td><td>\(logLevels.first { $0.0 == level }?.1 ?? "\(level)")</td><td>\(h(l.s("name")))</td><td>\(h(l.s("message")))</td></tr>"
            }
            body += "</tbody></table></div>"
            body += "<p id=\"logs-empty\" class=\"muted\"\(logs.isEmpty ? "" : " hidden")>No log lines yet\(minLevel > 0 ? " at this level" : "").</p>"
            if logs.count >= 1000 { body += "<p class=\"muted\">The first 1000 lines; read them all with <code>pgflow flow-run logs \(idText)</code>.</p>" }

            body += "<div class=\"grid\"><section><h2>Parameters</h2><pre><code>\(h(Format.json(run["parameters"])))</code></pre></section>"
            body += "<section id=\"run-result\" data-live><h2>Result</h2>"
            body += run["result"] == nil || run["result"] is NSNull ? "<p class=\"muted\">No result stored.</p>" : "<pre><code>\(h(Format.json(run["result"])))</code></pre>"
            body += "</section></div>"
            if !artifacts.isEmpty {
                body += "<h2>Artifacts</h2>" + table(["Key", "Type", "Description", "Data", "Created"], artifacts.map { a in
                    [h(a.s("key")), h(a.s("type")), h(a.s("description")), "<pre><code>\(h(Format.json(a["data"])))</code></pre>", Format.when(a.date("created_at"))]
                }, empty: "")
            }
            body += sqlBox("""
                SELECT * FROM pgflow.get_flow_run('\(idText)');
                SELECT * FROM pgflow.flow_run_state_history('\(idText)');
                SELECT * FROM pgflow.flow_run_task_timeline('\(idText)');
                SELECT * FROM pgflow.flow_run_log_page('\(idText)', 0, 1000);
                """)
            return DashboardPage(title: run.s("name"), body: body, stream: "/api/stream?flow_run=\(idText)&logs=true")
        }

        action("/flow-runs/{id}") { _, context, viewer, form in
            let id = try context.pathUUID("id")
            let verb = form["action"] ?? ""
            let idText = id.uuidString.lowercased()
            switch verb {
            case "cancel", "retry", "resume":
                let result = try await self.change(viewer, context, scope: .run, "POST /flow-runs/\(verb)", object: idText) { c -> TransitionResult in
                    switch verb {
                    case "cancel": return try PGFlowClient.cancelFlowRun(id, message: "cancelled from the dashboard", on: c)
                    case "retry": return try PGFlowClient.retryFlowRun(id, on: c)
                    default: return try PGFlowClient.resumeFlowRun(id, on: c)
                    }
                }
                if result.status == .rejected {
                    throw APIProblem(.conflict, "\(verb) refused: \(result.reason ?? "the run's state does not allow it") (the run is \(result.stateName))")
                }
                return .done("\(verb.capitalized): the run is \(result.stateName).")
            case "delete":
                try await self.change(viewer, context, scope: .run, "POST /flow-runs/delete", object: idText) { c in try PGFlowClient.deleteFlowRun(id, on: c) }
                return .page(DashboardPage(title: "Deleted", body: "<p class=\"notice\" role=\"status\">Deleted run \(h(idText)).</p><p><a href=\"/flow-runs\">Flow runs</a></p>"))
            default:
                throw APIProblem(.badRequest, "unknown action \(verb.prefix(40)): use cancel, retry, resume or delete")
            }
        }
    }

    /// Task runs as rows with a bar placed on the run's time span; subflow tasks indented under the task that ran them.
    func taskTimeline(_ tasks: [Row], run: Row) -> String {
        guard !tasks.isEmpty else { return "<p class=\"muted\">No task runs.</p>" }
        let now = Date()
        let starts = tasks.compactMap { $0.date("start_time") } + [run.date("start_time")].compactMap { $0 }
        let ends = tasks.map { $0.date("end_time") ?? now } + [run.date("end_time") ?? now]
        let t0 = starts.min() ?? now, t1 = max(ends.max() ?? now, t0.addingTimeInterval(0.001))
        let span = t1.timeIntervalSince(t0)
        return table(["Task", "State", "Timeline", "Started", "Duration", "Runs"], tasks.map { t in
            let depth = min(t.i("depth"), 4)
            var name = "<span class=\"indent-\(depth)\">\(depth > 0 ? "↳ " : "")\(h(t.s("name")))</span>"
            if !t.s("subflow_run_id").isEmpty {
                name += " · subflow \(runLink(t.s("subflow_run_id"), t.s("subflow_run_name"))) \(stateBadge("", t.s("subflow_state_name")))"
            }
            var bar = "<svg class=\"tl\" viewBox=\"0 0 1000 10\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><rect class=\"bg\" x=\"0\" y=\"0\" width=\"1000\" height=\"10\"></rect>"
            if let s = t.date("start_time") {
                let e = t.date("end_time") ?? now
                let x = s.timeIntervalSince(t0) / span * 1000, w = max(4, e.timeIntervalSince(s) / span * 1000)
                bar += String(format: "<rect class=\"b-%@\" x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"10\"></rect>", t.s("state_type").filter { $0.isLetter }, x, w)
            }
            bar += "</svg>"
            let retries = t.i("retries")
            let runs = "\(t.i("run_count"))" + (retries > 0 ? " <span class=\"state s-SCHEDULED\">\(retries) \(retries == 1 ? "retry" : "retries")</span>" : "")
            let duration: String
            if let s = t.date("start_time") {
                let live = t.date("end_time") == nil && t.s("state_type") == "RUNNING"
                duration = "<span class=\"dur\"\(live ? " data-start=\"\(Int(s.timeIntervalSince1970 * 1000))\"" : "")>\(Format.duration((t.date("end_time") ?? now).timeIntervalSince(s)))</span>"
            } else {
                duration = "<span class=\"muted\">—</span>"
            }
            return [name, stateBadge(t.s("state_type"), t.s("state_name")), bar, Format.when(t.date("start_time")), duration, runs]
        }, empty: "")
    }
}
