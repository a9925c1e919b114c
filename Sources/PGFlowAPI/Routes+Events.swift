// /api/events, /api/hooks/{slug}, /api/automations, /api/notifications (docs/events.md). Each handler
// parses, calls one client function, and maps the answer; the rules live in 0008_events.sql.
import Foundation
import Hummingbird
import PGFlowClient

extension APIRoutes {
    func addEventRoutes() {
        add(.get, "/api/events", scope: .read, tag: "events", summary: "List events, newest first (or after a seq, oldest first)",
            query: [.query("event", ["type": "string"], "a name pattern: pgflow.flow-run.*"),
                    .query("resource_id", ["type": "string"], "only events about this resource"),
                    .query("since", ["type": "string", "format": "date-time"], "occurred at or after"),
                    .query("until", ["type": "string", "format": "date-time"], "occurred before"),
                    .query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "page size (default 50)"),
                    .query("before_seq", ["type": "integer"], "the next page: the last seq of the previous one"),
                    .query("after_seq", ["type": "integer"], "follow: events after this seq, oldest first")],
            response: Schema.items()) { request, context in
            let (pattern, resource) = (request.query("event"), request.query("resource_id"))
            let (since, until, limit) = (try request.dateQuery("since"), try request.dateQuery("until"), try request.intQuery("limit", default: 50))
            let before = try request.query("before_seq").map { try Self.seq($0, "before_seq") }
            let after = try request.query("after_seq").map { try Self.seq($0, "after_seq") }
            return itemsJSON(try await self.read(context) { c in
                try PGFlowClient.eventsJSON(pattern: pattern, resourceID: resource, since: since, until: until, limit: limit,
                                            beforeSeq: before, afterSeq: after, on: c)
            })
        }
        add(.post, "/api/events", scope: .run, tag: "events", summary: "Emit an event (names starting pgflow. are the engine's own)",
            body: Schema.object(["event": Schema.string, "resource": Schema.object, "payload": Schema.object, "related": Schema.array(Schema.object)],
                                required: ["event"]),
            status: 201, response: Schema.object(["id": Schema.string], required: ["id"])) { request, context in
            let body = try await JSONBody.read(request, context)
            let event = try body.requiredString("event")
            let resource = try body.object("resource") ?? "{}", payload = try body.object("payload") ?? "{}"
            guard body.fields["related"] == nil || body.fields["related"] is NSNull || body.fields["related"] is [Any] else {
                throw APIProblem(.unprocessableContent, "field related must be a JSON array")
            }
            let related = try body.anyValue("related") ?? "[]"
            let id = try await self.change(context, "POST /api/events", object: event) { c in
                try PGFlowClient.emitEvent(event, resourceJSON: resource, payloadJSON: payload, relatedJSON: related, on: c)
            }
            return json("{\"id\":\"\(id.uuidString.lowercased())\"}", status: .created)
        }
        add(.post, "/api/hooks/{slug}", scope: .none, tag: "events",
            summary: "An inbound webhook: its template turns the JSON body into an event (the slug is the secret: no token)",
            body: Schema.anyValue, status: 201, response: Schema.object(["id": Schema.string], required: ["id"])) { request, context in
            let slug = context.path("slug")
            let buffer = try await request.body.collect(upTo: context.maxBodyBytes)
            let data = Data(buffer.readableBytesView)
            guard (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil else {
                throw APIProblem(.badRequest, "the request body must be JSON")
            }
            let text = String(decoding: data, as: UTF8.self)
            let id = try await self.change(context, "POST /api/hooks", object: slug) { c in
                try PGFlowClient.receiveWebhook(slug: slug, bodyJSON: text, on: c)
            }
            return json("{\"id\":\"\(id.uuidString.lowercased())\"}", status: .created)
        }

        add(.get, "/api/automations", scope: .read, tag: "automations", summary: "List automations", response: Schema.items()) { _, context in
            itemsJSON(try await self.read(context) { c in try PGFlowClient.automationsJSON(on: c) })
        }
        add(.get, "/api/automations/{name}", scope: .read, tag: "automations", summary: "Read an automation with its latest firings",
            response: Schema.object) { _, context in
            let name = context.path("name")
            guard let a = try await self.read(context, { c in try PGFlowClient.automationJSON(name: name, on: c) }) else {
                throw APIProblem(.notFound, "unknown automation \(name)")
            }
            return json(a)
        }
        add(.put, "/api/automations/{name}", scope: .admin, tag: "automations", summary: "Create or replace an automation",
            body: Schema.object(["trigger": Schema.object, "actions": Schema.array(Schema.object), "description": Schema.string],
                                required: ["trigger", "actions"]),
            response: Schema.object) { request, context in
            let body = try await JSONBody.read(request, context)
            guard let trigger = try body.object("trigger") else { throw APIProblem(.unprocessableContent, "field trigger is required (a JSON object)") }
            guard let actions = try body.anyValue("actions") else { throw APIProblem(.unprocessableContent, "field actions is required (a JSON array)") }
            let (description, name) = (try body.string("description"), context.path("name"))
            return json(try await self.change(context, "PUT /api/automations", object: name) { c in
                try PGFlowClient.createAutomation(name: name, triggerJSON: trigger, actionsJSON: actions, description: description, replace: true, on: c)
                return try PGFlowClient.automationJSON(name: name, on: c) ?? "{}"
            })
        }
        for (verb, paused) in [("pause", true), ("resume", false)] {
            add(.post, "/api/automations/{name}/\(verb)", scope: .admin, tag: "automations",
                summary: paused ? "Pause an automation" : "Resume an automation", response: Schema.object) { _, context in
                let name = context.path("name")
                return json(try await self.change(context, "POST /api/automations/\(verb)", object: name) { c in
                    try PGFlowClient.setAutomationPaused(name: name, paused: paused, on: c)
                    return try PGFlowClient.automationJSON(name: name, on: c) ?? "{}"
                })
            }
        }
        add(.delete, "/api/automations/{name}", scope: .admin, tag: "automations", summary: "Delete an automation with its firings",
            status: 204, response: nil) { _, context in
            let name = context.path("name")
            try await self.change(context, "DELETE /api/automations", object: name) { c in try PGFlowClient.deleteAutomation(name: name, on: c) }
            return noContent()
        }

        add(.get, "/api/notifications", scope: .read, tag: "notifications", summary: "List notification deliveries, newest first",
            query: [.query("dead", ["type": "boolean"], "only dead letters"),
                    .query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "most deliveries (default 50)")],
            response: Schema.items()) { request, context in
            let (dead, limit) = (try request.boolQuery("dead") ?? false, try request.intQuery("limit", default: 50))
            guard (1...1000).contains(limit) else { throw APIProblem(.unprocessableContent, "limit must be 1 to 1000") }
            return itemsJSON(try await self.read(context) { c in try PGFlowClient.notificationsJSON(deadOnly: dead, limit: limit, on: c) })
        }
        add(.post, "/api/notifications/{id}/retry", scope: .admin, tag: "notifications", summary: "Send a dead letter again",
            status: 204, response: nil) { _, context in
            guard let id = Int64(context.path("id")) else { throw APIProblem(.badRequest, "a notification id is a whole number") }
            try await self.change(context, "POST /api/notifications/retry", object: String(id)) { c in try PGFlowClient.retryNotification(id: id, on: c) }
            return noContent()
        }
    }

    /// A seq query parameter (400 otherwise).
    static func seq(_ text: String, _ name: String) throws -> Int64 {
        guard let n = Int64(text) else { throw APIProblem(.badRequest, "query parameter \(name) must be an integer, got \"\(text.prefix(40))\"") }
        return n
    }
}
