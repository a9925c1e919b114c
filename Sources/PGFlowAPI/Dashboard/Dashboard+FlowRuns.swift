// GET /flow-runs: the runs listing (pgflow.flow_run_page: filters in the query string, keyset pages,
// live), and POST /flow-runs: batch cancel, retry or delete of the selected runs or of every run
// matching the filter (after a confirmation page that says how many).
import Foundation
import Hummingbird
import PGFlowClient
import PGFlowPostgres

let stateTypes = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED"]
let stateChoices = ["Scheduled", "Late", "AwaitingRetry", "Pending", "Running", "Retrying", "Paused", "Cancelling", "Completed",
                    "Cached", "Failed", "TimedOut", "Cancelled", "Crashed"]
/// The most runs one "all matching" batch action touches.
let batchCap = 5000

/// The listing's filters, as the query string (and the batch form's hidden fields) carry them.
struct RunFilterParams: Sendable {
    var state = "", flow = "", deployment = "", tag = "", workQueue = "", range = ""

    init(_ get: (String) -> String?) {
        state = get("state") ?? ""
        flow = get("flow") ?? ""
        deployment = get("deployment") ?? ""
        tag = get("tag") ?? ""
        workQueue = get("work_queue") ?? ""
        range = get("range") ?? ""
    }

    /// The SQL filter (state types match case-insensitively; other state values are state names).
    func filter(now: Date = Date()) throws -> FlowRunFilter {
        var f = FlowRunFilter()
        if !state.isEmpty {
            if stateTypes.contains(state.uppercased()) && !["Late"].contains(state) { f.stateType = state.uppercased() } else { f.stateName = state }
        }
        f.flow = flow.isEmpty ? nil : flow
        f.deployment = deployment.isEmpty ? nil : deployment
        f.tag = tag.isEmpty ? nil : tag
        f.workQueue = workQueue.isEmpty ? nil : workQueue
        if !range.isEmpty {
            guard let w = dashboardWindows.first(where: { $0.0 == range }) else { throw APIProblem(.badRequest, "range must be 1h, 24h, 7d or 30d") }
            f.since = now.addingTimeInterval(-Double(w.1))
        }
        return f
    }

    var pairs: [(String, String)] {
        [("state", state), ("flow", flow), ("deployment", deployment), ("tag", tag), ("work_queue", workQueue), ("range", range)].filter { !$0.1.isEmpty }
    }
    var query: String { pairs.map { "\($0.0)=\(urlEncode($0.1))" }.joined(separator: "&") }
    var hiddenFields: String { pairs.map { "<input type=\"hidden\" name=\"\($0.0)\" value=\"\(h($0.1))\">" }.joined() }
    var isEmpty: Bool { pairs.isEmpty }

    /// The same rows in psql.
    func sql(_ f: FlowRunFilter, limit: Int) -> String {
        var args: [String] = []
        if let v = f.stateType { args.append("p_state_type => \(sqlLiteral(v))") }
        if let v = f.stateName { args.append("p_state_name => \(sqlLiteral(v))") }
        if let v = f.flow { args.append("p_flow => \(sqlLiteral(v))") }
        if let v = f.deployment { args.append("p_deployment => \(sqlLiteral(v))") }
        if let v = f.tag { args.append("p_tag => \(sqlLiteral(v))") }
        if let v = f.workQueue { args.append("p_work_queue => \(sqlLiteral(v))") }
        if let w = dashboardWindows.first(where: { $0.0 == range }) { args.append("p_since => now() - interval '\(w.1) seconds'") }
        args.append("p_limit => \(limit)")
        return "SELECT * FROM pgflow.flow_run_page(\(args.joined(separator: ", ")));"
    }
}

extension DashboardRoutes {
    func addFlowRunPages() {
        page("/flow-runs") { request, _, viewer, c in
            let params = RunFilterParams { request.query($0) }
            var f = try params.filter()
            f.limit = try request.intQuery("limit", default: 50)
            f.cursor = request.query("cursor")
            let page = try PGFlowJSON.flowRuns(f, on: c)
            let runs = rows(page.items)
            var body = request.flash + "<h1>Flow runs</h1>" + self.runFilters(params)
            body += "<form method=\"post\" action=\"/flow-runs\" id=\"batch\">" + viewer.formFields(next: request.uri.description) + params.hiddenFields
            if viewer.canRun {
                body += "<div class=\"actions\" role=\"group\" aria-label=\"Batch actions\">"
                for (verb, label) in [("cancel", "Cancel"), ("retry", "Retry"), ("delete", "Delete")] {
                    body += "<button type=\"submit\" name=\"action\" value=\"\(verb)-selected\"\(verb == "delete" ? " class=\"danger\" data-confirm=\"Delete the selected runs?\"" : "")>\(label) selected</button>"
                }
                for (verb, label) in [("cancel", "Cancel"), ("retry", "Retry"), ("delete", "Delete")] {
                    body += "<button type=\"submit\" name=\"action\" value=\"\(verb)-all\">\(label) all matching…</button>"
                }
                body += "</div>"
            }
            body += "<p id=\"live-note\" class=\"live-note\" aria-live=\"polite\">Live: this list follows state changes.</p>"
            var headers = ["Run", "Flow", "Deployment", "State", "Start", "Duration", "Tags", "Queue"]
            if viewer.canRun { headers.insert("<input type=\"checkbox\" id=\"select-all\" aria-label=\"Select all runs on this page\">", at: 0) }
            body += "<div id=\"runs\" data-live>"
            body += table(headers, runs.map { r in
                var cells = [runLink(r.s("id"), r.s("name")), h(r.s("flow")),
                             r.s("deployment").isEmpty ? "<span class=\"muted\">—</span>" : deploymentLink(r.s("flow") + "/" + r.s("deployment")),
                             stateBadge(r.s("state_type"), r.s("state_name")),
                             Format.when(r.date("start_time") ?? r.date("expected_start_time")), Format.runDuration(r),
                             h((r["tags"] as? [String] ?? []).joined(separator: ", ")), h(r.s("work_queue"))]
                if viewer.canRun {
                    cells.insert("<input type=\"checkbox\" name=\"id\" value=\"\(h(r.s("id")))\" aria-label=\"Select \(h(r.s("name")))\">", at: 0)
                }
                return cells
            }, empty: params.isEmpty && f.cursor == nil ? "No flow runs yet." : "No flow run matches.", attributes: " id=\"runs-table\"")
            body += "</div></form><nav class=\"pager\" aria-label=\"Pages\">"
            if f.cursor != nil { body += "<a href=\"/flow-runs?\(params.query)\">Newest</a>" }
            if let next = page.nextCursor {
                body += "<a href=\"/flow-runs?\(params.query)\(params.isEmpty ? "" : "&")cursor=\(urlEncode(next))\" rel=\"next\">Older runs</a>"
            }
            body += "</nav>" + sqlBox(params.sql(f, limit: f.limit))
            // live only on the first page (later pages are a fixed slice of history)
            return DashboardPage(title: "Flow runs", body: body, stream: f.cursor == nil ? "/api/stream" : nil)
        }

        action("/flow-runs") { request, context, viewer, form in
            let params = RunFilterParams { form[$0] }
            let action = form["action"] ?? ""
            let parts = action.split(separator: "-").map(String.init)
            guard parts.count == 2, ["cancel", "retry", "delete"].contains(parts[0]), ["selected", "all"].contains(parts[1]) else {
                throw APIProblem(.badRequest, "unknown batch action \(action.prefix(40))")
            }
            let verb = parts[0]
            if parts[1] == "selected" {
                let ids = try form.all("id").map { text -> UUID in
                    guard let id = UUID(uuidString: text) else { throw APIProblem(.badRequest, "not a run id: \(text.prefix(40))") }
                    return id
                }
                guard !ids.isEmpty else { throw APIProblem(.badRequest, "select runs first") }
                return .done(try await self.batch(verb, ids, viewer, context))
            }
            let filter = try params.filter()
            let (ids, more) = try await self.pool.withConnection { c in try PGFlowJSON.flowRunIDs(filter, cap: batchCap, on: c) }
            if form["confirm"] != "yes" {
                let what = params.isEmpty ? "every flow run" : "every flow run matching " + params.pairs.map { "\($0.0) = \($0.1)" }.joined(separator: ", ")
                var body = "<h1>\(verb.capitalized) \(Format.count(ids.count))\(more ? "+" : "") runs?</h1>"
                body += "<p>This will \(verb) \(h(what)): <strong>\(Format.count(ids.count))\(more ? " (the newest \(Format.count(batchCap)); run it again for the rest)" : "")</strong> runs. "
                body += "Runs whose state does not allow it are left as they are.</p>"
                body += "<form method=\"post\" action=\"/flow-runs\">" + viewer.formFields(next: form["next"] ?? "/flow-runs") + params.hiddenFields
                body += "<input type=\"hidden\" name=\"confirm\" value=\"yes\"><div class=\"actions\">"
                body += "<button type=\"submit\" name=\"action\" value=\"\(verb)-all\" class=\"\(verb == "delete" ? "danger" : "primary")\">Yes, \(verb) \(Format.count(ids.count)) runs</button>"
                body += "<a href=\"\(h(Self.localPath(form["next"]) ?? "/flow-runs"))\">No, go back</a></div></form>"
                return .page(DashboardPage(title: "Confirm", body: body))
            }
            return .done(try await self.batch(verb, ids, viewer, context))
        }
        addFlowRunDetail()
    }

    /// Cancels, retries or deletes runs in one transaction (each in a savepoint, so a run that cannot be
    /// changed is counted and skipped); one audit row for the batch.
    func batch(_ verb: String, _ ids: [UUID], _ viewer: DashboardViewer, _ context: APIRequestContext) async throws -> String {
        let (done, skipped) = try await change(viewer, context, scope: .run, "POST /flow-runs batch \(verb)", object: "\(ids.count) runs") { c -> (Int, Int) in
            var done = 0, skipped = 0
            for id in ids {
                try c.query("SAVEPOINT batch_item")
                do {
                    switch verb {
                    case "cancel": if try PGFlowClient.cancelFlowRun(id, message: "cancelled from the dashboard", on: c).status == .rejected { skipped += 1 } else { done += 1 }
                    case "retry": if try PGFlowClient.retryFlowRun(id, on: c).status == .rejected { skipped += 1 } else { done += 1 }
                    default: try PGFlowClient.deleteFlowRun(id, on: c); done += 1
                    }
                    try c.query("RELEASE SAVEPOINT batch_item")
                } catch let error as PostgresError where error.kind == .server && !(error.sqlState ?? "").hasPrefix("40") {
                    try c.query("ROLLBACK TO SAVEPOINT batch_item")
                    skipped += 1
                }
            }
            return (done, skipped)
        }
        let past = ["cancel": "Cancelled", "retry": "Retried", "delete": "Deleted"][verb] ?? verb
        return "\(past) \(done) run\(done == 1 ? "" : "s")" + (skipped > 0 ? "; \(skipped) left as they were (their state does not allow it)" : "") + "."
    }

    /// The filter form (GET, so filters live in the URL).
    func runFilters(_ p: RunFilterParams) -> String {
        var out = "<form method=\"get\" action=\"/flow-runs\" class=\"filters\" role=\"search\" aria-label=\"Filter runs\">"
        out += "<label>State<select name=\"state\"><option value=\"\">Any</option>"
        for s in stateChoices { out += "<option\(p.state == s ? " selected" : "")>\(s)</option>" }
        out += "</select></label>"
        for (name, label, value) in [("flow", "Flow", p.flow), ("deployment", "Deployment (flow/name)", p.deployment), ("tag", "Tag", p.tag), ("work_queue", "Work queue", p.workQueue)] {
            out += "<label>\(label)<input name=\"\(name)\" value=\"\(h(value))\" size=\"14\"></label>"
        }
        out += "<label>Created<select name=\"range\"><option value=\"\">Any time</option>"
        for w in dashboardWindows { out += "<option value=\"\(w.0)\"\(p.range == w.0 ? " selected" : "")>Last \(w.0)</option>" }
        out += "</select></label><button type=\"submit\">Filter</button>"
        if !p.isEmpty { out += "<a href=\"/flow-runs\">Clear</a>" }
        return out + "</form>"
    }
}
