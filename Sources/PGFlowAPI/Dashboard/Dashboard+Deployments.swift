// GET /deployments and /deployments/{flow}/{name}: deployments, one deployment's schedules with their
// next runs, its waiting and recent runs; POST /deployments/{flow}/{name}: pause, resume, Quick Run
// (the deployment's own parameters) and Custom Run (a form built from its default parameters, or JSON).
import Foundation
import Hummingbird
import PGFlowClient

extension DashboardRoutes {
    func addDeploymentPages() {
        page("/deployments") { request, _, viewer, c in
            let deployments = rows(try PGFlowJSON.deployments(flow: nil, workQueue: nil, tag: nil, paused: nil, on: c))
            var body = request.flash + "<h1>Deployments</h1>"
            var headers = ["Deployment", "Status", "Work queue", "Schedules", "Tags", "Entrypoint"]
            if viewer.canRun { headers.append("Run") }
            body += table(headers, deployments.map { d in
                let name = d.s("name")
                var cells = [deploymentLink(name), d.b("paused") ? stateBadge("PAUSED", "Paused") : stateBadge("COMPLETED", "Active"),
                             h(d.s("work_queue")), "<span class=\"num\">\(d.i("active_schedules"))</span>",
                             h((d["tags"] as? [String] ?? []).joined(separator: ", ")), "<code>\(h(d.s("entrypoint")))</code>"]
                if viewer.canRun {
                    cells.append("<form method=\"post\" action=\"\(h(self.deploymentPath(name)))\" class=\"inline\">" + viewer.formFields(next: "/deployments")
                                 + "<button type=\"submit\" name=\"action\" value=\"run\" aria-label=\"Quick run \(h(name))\">Quick Run</button></form>")
                }
                return cells
            }, empty: "No deployments: create one with pgflow deploy -f pgflow.yaml.")
            body += sqlBox("SELECT * FROM pgflow.deployment_list ORDER BY deployment;")
            return DashboardPage(title: "Deployments", body: body, stream: nil)
        }

        page("/deployments/{flow}/{deployment}") { request, context, viewer, c in
            let name = context.decodedDeploymentName
            let d = row(try PGFlowJSON.deployment(name, on: c))
            let schedules = rows(try PGFlowJSON.scheduleList(deployment: name, on: c))
            let upcoming = rows(try PGFlowJSON.deploymentUpcomingRuns(name, limit: 10, on: c))
            var filter = FlowRunFilter()
            filter.deployment = name
            filter.limit = 10
            let recent = rows(try PGFlowJSON.flowRuns(filter, on: c).items)
            let path = self.deploymentPath(name)

            var body = request.flash + "<h1>\(h(name)) " + (d.b("paused") ? stateBadge("PAUSED", "Paused") : stateBadge("COMPLETED", "Active")) + "</h1>"
            if !d.s("description").isEmpty { body += "<p>\(h(d.s("description")))</p>" }
            body += "<form method=\"post\" action=\"\(h(path))\" class=\"actions\" aria-label=\"Deployment actions\">" + viewer.formFields(next: path)
            if viewer.canRun { body += "<button type=\"submit\" name=\"action\" value=\"run\" class=\"primary\">Quick Run</button>" }
            if viewer.canAdmin {
                body += d.b("paused") ? "<button type=\"submit\" name=\"action\" value=\"resume\">Resume schedules</button>"
                                      : "<button type=\"submit\" name=\"action\" value=\"pause\">Pause schedules</button>"
            }
            body += "</form><dl class=\"meta\">"
            let items: [(String, String)] = [
                ("Entrypoint", "<code>\(h(d.s("entrypoint")))</code>"), ("Work queue", h(d.s("work_queue"))),
                ("Tags", h((d["tags"] as? [String] ?? []).joined(separator: ", "))), ("Version", h(d.s("version"))),
                ("Concurrency limit", d["concurrency_limit"] is NSNull || d["concurrency_limit"] == nil ? "none" : "\(d.i("concurrency_limit")) (\(h(d.s("collision_strategy"))))"),
                ("Retries", "\(d.i("retries"))"), ("Missed runs", h(d.s("missed_run_policy"))),
                ("Runs", "<a href=\"/flow-runs?deployment=\(urlEncode(name))\">all runs of this deployment</a>"),
            ]
            for (k, v) in items { body += "<dt>\(k)</dt><dd>\(v)</dd>" }
            body += "</dl><div id=\"deployment-live\" data-live><h2>Schedules</h2>"
            body += table(["Kind", "Expression", "Time zone", "Status", "Next run"], schedules.map { s in
                [h(s.s("kind")), "<code>\(h(s.s("expression")))</code>", h(s.s("timezone")), s.b("active") ? "Active" : stateBadge("PAUSED", "Inactive"),
                 Format.when(s.date("next_run"))]
            }, empty: "No schedules: runs start only when asked.")
            body += "<h2>Next runs</h2>" + table(["Run", "State", "Due"], upcoming.map { r in
                [runLink(r.s("id"), r.s("name")), stateBadge("SCHEDULED", r.s("state_name")), Format.when(r.date("scheduled_at"))]
            }, empty: "No run is waiting.")
            body += "<h2>Recent runs</h2>" + table(["Run", "State", "Start", "Duration"], recent.map { r in
                [runLink(r.s("id"), r.s("name")), stateBadge(r.s("state_type"), r.s("state_name")),
                 Format.when(r.date("start_time") ?? r.date("expected_start_time")), Format.runDuration(r)]
            }, empty: "No runs yet.") + "</div>"
            if viewer.canRun { body += self.customRunForm(d, path: path, viewer: viewer) }
            body += sqlBox("""
                SELECT * FROM pgflow.deployment_list WHERE deployment = \(sqlLiteral(name));
                SELECT * FROM pgflow.schedule_list WHERE deployment = \(sqlLiteral(name));
                SELECT * FROM pgflow.deployment_upcoming_runs(\(sqlLiteral(name)), 10);
                SELECT * FROM pgflow.flow_run_page(p_deployment => \(sqlLiteral(name)), p_limit => 10);
                """)
            return DashboardPage(title: name, body: body, stream: "/api/stream?deployment=\(urlEncode(name))")
        }

        action("/deployments/{flow}/{deployment}") { _, context, viewer, form in
            let name = context.decodedDeploymentName
            switch form["action"] ?? "" {
            case "pause", "resume":
                let paused = form["action"] == "pause"
                try await self.change(viewer, context, scope: .admin, "POST /deployments/\(paused ? "pause" : "resume")", object: name) { c in
                    try PGFlowClient.setDeploymentPaused(name, paused: paused, on: c)
                }
                return .done(paused ? "Paused the schedules of \(name)." : "Resumed the schedules of \(name).")
            case "run", "custom-run":
                var request = RunRequest()
                if form["action"] == "custom-run" {
                    let defaults = row(try await self.pool.withConnection { c in try PGFlowJSON.deployment(name, on: c) })
                    request.parametersJSON = try Self.customParameters(form, defaults: defaults["parameters"] as? Row ?? [:])
                    if let runName = form["run_name"], !runName.isEmpty { request.name = runName }
                    if let tags = form["tags"], !tags.isEmpty {
                        request.tags = tags.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                    }
                }
                let r = request
                let id = try await self.change(viewer, context, scope: .run, "POST /deployments/runs", object: name) { c in
                    try PGFlowClient.runDeployment(name, r, on: c)
                }
                let idText = id.uuidString.lowercased()
                return .done("Created run \(idText) of \(name): follow it on /flow-runs/\(idText).")
            default:
                throw APIProblem(.badRequest, "unknown action: use run, custom-run, pause or resume")
            }
        }
    }

    func deploymentPath(_ name: String) -> String {
        let parts = name.split(separator: "/", maxSplits: 1).map(String.init)
        return "/deployments/" + parts.map(urlEncode).joined(separator: "/")
    }

    /// A field per default parameter (text, number, true/false, or JSON for lists and objects), and a JSON box that overrides them.
    func customRunForm(_ d: Row, path: String, viewer: DashboardViewer) -> String {
        let defaults = d["parameters"] as? Row ?? [:]
        var out = "<h2 id=\"custom-run\">Custom Run</h2><form method=\"post\" action=\"\(h(path))\" class=\"custom-run\" aria-labelledby=\"custom-run\">" + viewer.formFields(next: path)
        out += "<input type=\"hidden\" name=\"action\" value=\"custom-run\"><dl class=\"meta\">"
        for key in defaults.keys.sorted() {
            let value = defaults[key]
            let id = "p-" + urlEncode(key)
            out += "<dt><label for=\"\(h(id))\">\(h(key))</label></dt><dd>"
            switch value {
            case let b as Bool where JSONBody.looksBoolean(b):
                out += "<select id=\"\(h(id))\" name=\"p.\(h(key))\"><option\(b ? " selected" : "")>true</option><option\(b ? "" : " selected")>false</option></select>"
            case let n as NSNumber:
                out += "<input id=\"\(h(id))\" name=\"p.\(h(key))\" type=\"number\" step=\"any\" value=\"\(h(n))\">"
            case let s as String:
                out += "<input id=\"\(h(id))\" name=\"p.\(h(key))\" value=\"\(h(s))\" size=\"40\">"
            default:
                out += "<textarea id=\"\(h(id))\" name=\"j.\(h(key))\" rows=\"2\" cols=\"40\">\(h(Format.json(value)))</textarea> <span class=\"muted\">JSON</span>"
            }
            out += "</dd>"
        }
        out += "<dt><label for=\"run-name\">Run name</label></dt><dd><input id=\"run-name\" name=\"run_name\" placeholder=\"random\"></dd>"
        out += "<dt><label for=\"run-tags\">Extra tags</label></dt><dd><input id=\"run-tags\" name=\"tags\" placeholder=\"a, b\"></dd>"
        out += "<dt><label for=\"parameters-json\">Parameters as JSON</label></dt><dd><textarea id=\"parameters-json\" name=\"parameters_json\" rows=\"4\" cols=\"60\" placeholder=\"{}\"></textarea>"
        out += "<br><span class=\"muted\">When filled in, this object is used instead of the fields above (merged over the deployment's parameters).</span></dd></dl>"
        return out + "<button type=\"submit\" class=\"primary\">Run with these parameters</button></form>"
    }

    /// The parameters of a Custom Run: the JSON box when filled in, else each field typed like its default.
    static func customParameters(_ form: DashboardForm, defaults: Row) throws -> String {
        if let text = form["parameters_json"]?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
            guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8)), value is Row else {
                throw APIProblem(.unprocessableContent, "parameters as JSON must be a JSON object, such as {\"day\": \"2026-12-01\"}")
            }
            return try JSONBody.text(value)
        }
        var parameters: Row = [:]
        for (key, value) in form.fields {
            if key.hasPrefix("p.") {
                let name = String(key.dropFirst(2))
                switch defaults[name] {
                case let b as Bool where JSONBody.looksBoolean(b): parameters[name] = value == "true"
                case is NSNumber:
                    guard let n = Double(value), n.isFinite else { throw APIProblem(.unprocessableContent, "parameter \(name) must be a number") }
                    parameters[name] = n == n.rounded() && abs(n) < 1e15 ? NSNumber(value: Int64(n)) : NSNumber(value: n)
                default: parameters[name] = value
                }
            } else if key.hasPrefix("j.") {
                let name = String(key.dropFirst(2))
                guard let v = try? JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed]) else {
                    throw APIProblem(.unprocessableContent, "parameter \(name) must be JSON")
                }
                parameters[name] = v
            }
        }
        return try JSONBody.text(parameters)
    }
}

extension APIRequestContext {
    /// `flow/deployment` from the path, percent-decoded (the dashboard links names with any character).
    var decodedDeploymentName: String {
        let (flow, deployment) = (path("flow"), path("deployment"))
        return "\(flow.removingPercentEncoding ?? flow)/\(deployment.removingPercentEncoding ?? deployment)"
    }
}
