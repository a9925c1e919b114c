// GET /events (the event feed, filtered by name pattern and resource, paged by sequence) and
// /automations (triggers, actions, firings; pause/resume for admins); their POSTs call the API's
// client functions, as every dashboard action does.
import Foundation
import Hummingbird
import PGFlowClient

extension DashboardRoutes {
    func addEventPages() {
        page("/events") { request, _, _, c in
            let pattern = request.query("event").flatMap { $0.isEmpty ? nil : $0 }
            let resource = request.query("resource").flatMap { $0.isEmpty ? nil : $0 }
            let before = try request.query("before").flatMap { text -> Int64? in
                guard !text.isEmpty else { return nil }
                guard let n = Int64(text), n > 0 else { throw APIProblem(.badRequest, "before is an event sequence number") }
                return n
            }
            let limit = 100
            let events = rows(try PGFlowClient.eventsJSON(pattern: pattern, resourceID: resource, since: nil, until: nil, limit: limit,
                                                          beforeSeq: before, afterSeq: nil, on: c))
            var body = request.flash + "<h1>Events</h1>"
            body += "<form method=\"get\" action=\"/events\" class=\"filters\" role=\"search\" aria-label=\"Filter events\">"
            body += "<label>Event (* matches any part)<input name=\"event\" value=\"\(h(pattern ?? ""))\" size=\"28\" placeholder=\"pgflow.flow-run.*\"></label>"
            body += "<label>Resource id<input name=\"resource\" value=\"\(h(resource ?? ""))\" size=\"36\"></label>"
            body += "<button type=\"submit\">Filter</button>"
            if pattern != nil || resource != nil { body += "<a href=\"/events\">Clear</a>" }
            body += "</form>"
            body += table(["Occurred", "Event", "Resource", "Payload"], events.map { e in
                let resourceID = e.s("resource_id")
                let resourceCell: String
                if e.s("event").hasPrefix("pgflow.flow-run."), UUID(uuidString: resourceID) != nil {
                    resourceCell = runLink(resourceID, resourceID)
                } else {
                    resourceCell = "<code>\(h(resourceID))</code>"
                }
                return [Format.when(e.date("occurred")), "<code>\(h(e.s("event")))</code>", resourceCell, jsonCell(e["payload"], limit: 300, missing: "{}")]
            }, empty: "No events match.")
            if events.count == limit, let last = events.last {
                var query = ["before=\(last.i("seq"))"]
                if let pattern { query.append("event=\(urlEncode(pattern))") }
                if let resource { query.append("resource=\(urlEncode(resource))") }
                body += "<nav class=\"pager\" aria-label=\"Pages\"><a href=\"/events?\(query.joined(separator: "&"))\">Older events</a></nav>"
            }
            body += sqlBox("SELECT * FROM pgflow.event_page(p_pattern => \(sqlLiteral(pattern)), p_resource_id => \(sqlLiteral(resource)), p_limit => \(limit));")
            return DashboardPage(title: "Events", body: body, stream: nil)
        }

        page("/automations") { request, _, viewer, c in
            let automations = rows(try PGFlowClient.automationsJSON(on: c))
            var body = request.flash + "<h1>Automations</h1>"
            var headers = ["Automation", "Status", "Trigger", "Actions", "Source", "Firings", "Last fired"]
            if viewer.canAdmin { headers.append("Action") }
            body += table(headers, automations.map { a in
                let name = a.s("name")
                var cells = ["<span id=\"a-\(h(name))\">\(h(name))</span>" + (a.s("description").isEmpty ? "" : "<br><span class=\"muted\">\(h(a.s("description")))</span>"),
                             a.b("paused") ? stateBadge("PAUSED", "Paused") : stateBadge("COMPLETED", "Active"),
                             jsonCell(a["trigger"], limit: 400), jsonCell(a["actions"], limit: 400), h(a.s("source")), "<span class=\"num\">\(a.i("firings"))</span>",
                             Format.when(a.date("last_fired_at"))]
                if viewer.canAdmin { cells.append(viewer.pauseResumeForm("/automations", name: name, paused: a.b("paused"))) }
                return cells
            }, empty: "No automations. Create one with pgflow automation create, or automations: in pgflow.yaml.")
            body += sqlBox("SELECT * FROM pgflow.automation_list ORDER BY name;")
            return DashboardPage(title: "Automations", body: body, stream: nil)
        }
        action("/automations") { _, context, viewer, form in
            let name = form["name"] ?? ""
            guard let verb = form["action"], verb == "pause" || verb == "resume" else { throw APIProblem(.badRequest, "unknown action: use pause or resume") }
            try await self.change(viewer, context, scope: .admin, "POST /automations/\(verb)", object: name) { c in
                try PGFlowClient.setAutomationPaused(name: name, paused: verb == "pause", on: c)
            }
            return .done(verb == "pause" ? "Paused automation \(name): its triggers fire nothing." : "Resumed automation \(name).")
        }
    }
}

/// A JSON value as compact text in a code cell (sorted keys, cut after `limit` characters with "…";
/// `missing` when there is none).
private func jsonCell(_ value: Any?, limit: Int, missing: String = "") -> String {
    let text = value.flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) }
        .map { String(decoding: $0, as: UTF8.self) } ?? missing
    return "<code class=\"payload\">\(h(String(text.prefix(limit))))\(text.count > limit ? "…" : "")</code>"
}
