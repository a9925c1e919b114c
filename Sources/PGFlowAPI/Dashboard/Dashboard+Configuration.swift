// GET /work-queues (pause/resume, the command that starts an agent on each), /concurrency-limits
// (slots in use, holders, reset), /agents and /flows; their POSTs call the API's client functions.
import Foundation
import Hummingbird
import PGFlowClient

extension DashboardRoutes {
    func addConfigurationPages() {
        page("/work-queues") { request, _, viewer, c in
            let queues = rows(try PGFlowJSON.workQueues(on: c))
            let now = Date()
            var body = request.flash + "<h1>Work queues</h1><div id=\"queues\" data-live>"
            var headers = ["Queue", "Priority", "Status", "Limit", "Due", "Later", "Late", "Running", "Oldest due", "Start an agent"]
            if viewer.canAdmin { headers.append("Action") }
            body += table(headers, queues.map { q in
                let name = q.s("name")
                let command = "pgflow-agent --queue \(name)"
                var cells = ["<span id=\"q-\(h(name))\">\(h(name))</span>", "<span class=\"num\">\(q.i("priority"))</span>",
                             q.b("paused") ? stateBadge("PAUSED", "Paused") : stateBadge("COMPLETED", "Active"),
                             q["concurrency_limit"] is NSNull || q["concurrency_limit"] == nil ? "none" : "\(q.i("concurrency_limit"))",
                             "<span class=\"num\">\(q.i("due"))</span>", "<span class=\"num\">\(q.i("scheduled_later"))</span>",
                             "<span class=\"num\">\(q.i("late"))</span>", "<span class=\"num\">\(q.i("running"))</span>",
                             q.date("oldest_due").map { Format.duration(now.timeIntervalSince($0)) } ?? "—",
                             "<code class=\"cmd\">\(h(command))</code> <button type=\"button\" class=\"copy\" data-copy=\"\(h(command))\" aria-label=\"Copy the command for \(h(name))\">Copy</button>"]
                if viewer.canAdmin { cells.append(viewer.pauseResumeForm("/work-queues", name: name, paused: q.b("paused"))) }
                return cells
            }, empty: "No work queues.")
            body += "</div>" + sqlBox("SELECT * FROM pgflow.queue_status ORDER BY priority, name;")
            return DashboardPage(title: "Work queues", body: body, stream: "/api/stream")
        }
        action("/work-queues") { _, context, viewer, form in
            let name = form["name"] ?? ""
            guard let verb = form["action"], verb == "pause" || verb == "resume" else { throw APIProblem(.badRequest, "unknown action: use pause or resume") }
            try await self.change(viewer, context, scope: .admin, "POST /work-queues/\(verb)", object: name) { c in
                try PGFlowClient.setWorkQueuePaused(name, paused: verb == "pause", on: c)
            }
            return .done(verb == "pause" ? "Paused work queue \(name): agents claim nothing from it." : "Resumed work queue \(name).")
        }

        page("/concurrency-limits") { request, _, viewer, c in
            let limits = rows(try PGFlowJSON.concurrencyLimits(on: c))
            var body = request.flash + "<h1>Concurrency limits</h1>"
            var headers = ["Limit", "Kind", "Size", "In use", "Status", "Expired leases", "Holders"]
            if viewer.canAdmin { headers.append("Action") }
            var cellsList: [[String]] = []
            for l in limits {
                let name = l.s("name")
                let holders = l.i("slots_in_use") > 0 ? rows(try PGFlowJSON.concurrencyLimitHolders(name, on: c)) : []
                let holderText = holders.isEmpty ? "<span class=\"muted\">none</span>" : "<ul>" + holders.prefix(20).map { hd in
                    let label = "\(hd.s("holder_kind")) " + (hd.s("holder_name").isEmpty ? hd.s("holder_id") : hd.s("holder_name"))
                    let link = hd.s("flow_run_id").isEmpty ? h(label) : runLink(hd.s("flow_run_id"), label)
                    return "<li>\(link) · \(hd.i("slots")) slot\(hd.i("slots") == 1 ? "" : "s")</li>"
                }.joined() + (holders.count > 20 ? "<li>… \(holders.count - 20) more</li>" : "") + "</ul>"
                var cells = [h(name), h(l.s("kind")), "<span class=\"num\">\(l.i("concurrency_limit"))</span>",
                             "<span class=\"num\">\(l.i("slots_in_use")) of \(l.i("concurrency_limit"))</span>",
                             l.b("active") ? "Active" : stateBadge("PAUSED", "Inactive"), "<span class=\"num\">\(l.i("expired_leases"))</span>", holderText]
                if viewer.canAdmin {
                    cells.append("<form method=\"post\" action=\"/concurrency-limits\" class=\"inline\">" + viewer.formFields(next: "/concurrency-limits")
                                 + "<input type=\"hidden\" name=\"name\" value=\"\(h(name))\"><button type=\"submit\" name=\"action\" value=\"reset\" data-confirm=\"Release the slots explicit leases hold on \(h(name))?\">Reset</button></form>")
                }
                cellsList.append(cells)
            }
            body += "<div id=\"limits\" data-live>" + table(headers, cellsList, empty: "No concurrency limits: pgflow concurrency-limit create NAME N makes one.") + "</div>"
            body += sqlBox("SELECT * FROM pgflow.concurrency_status ORDER BY name;\n-- holders of one limit:\nSELECT * FROM pgflow.concurrency_limit_holders('NAME');")
            return DashboardPage(title: "Concurrency limits", body: body, stream: "/api/stream")
        }
        action("/concurrency-limits") { _, context, viewer, form in
            let name = form["name"] ?? ""
            guard form["action"] == "reset" else { throw APIProblem(.badRequest, "unknown action: use reset") }
            let n = try await self.change(viewer, context, scope: .admin, "POST /concurrency-limits/reset", object: name) { c in
                try PGFlowClient.resetConcurrencyLimit(name, on: c)
            }
            return .done("Released \(n) slot\(n == 1 ? "" : "s") of \(name).")
        }

        page("/agents") { request, _, _, c in
            let agents = rows(try PGFlowJSON.agents(on: c))
            let now = Date()
            var body = request.flash + "<h1>Agents</h1><div id=\"agents\" data-live>"
            body += table(["Agent", "Status", "Work queues", "Registered", "Last heartbeat", "Active runs"], agents.map { a in
                [h(a.s("name")), self.agentStatus(a, now: now), h((a["work_queues"] as? [String] ?? []).joined(separator: ", ")),
                 Format.when(a.date("registered_at")), Format.when(a.date("last_heartbeat_at")), "<span class=\"num\">\(a.i("active_runs"))</span>"]
            }, empty: "No agent has registered: start one with pgflow-agent --queue default.")
            body += "</div>" + sqlBox("SELECT * FROM pgflow.agent_status ORDER BY last_heartbeat_at DESC, id;")
            return DashboardPage(title: "Agents", body: body, stream: "/api/stream")
        }

        page("/flows") { request, _, _, c in
            let flows = rows(try PGFlowJSON.flows(on: c))
            var body = request.flash + "<h1>Flows</h1>"
            body += table(["Flow", "Deployments", "Created", "Runs"], flows.map { f in
                let name = f.s("name")
                let deployments = (f["deployment_names"] as? [String] ?? []).map { deploymentLink(name + "/" + $0) }.joined(separator: ", ")
                return [h(name), deployments.isEmpty ? "<span class=\"muted\">none</span>" : deployments, Format.when(f.date("created_at")),
                        "<a href=\"/flow-runs?flow=\(urlEncode(name))\">runs</a>"]
            }, empty: "No flows yet.")
            body += sqlBox("SELECT * FROM pgflow.flow_list ORDER BY name;")
            return DashboardPage(title: "Flows", body: body, stream: nil)
        }
    }
}
