// /api/work-queues, /api/concurrency-limits, /api/variables, /api/agents, /api/flows.
import Foundation
import Hummingbird
import PGFlowClient

extension APIRoutes {
    func addConfigurationRoutes() {
        // work queues
        add(.get, "/api/work-queues", scope: .read, tag: "work-queues", summary: "List work queues with waiting and active runs",
            response: Schema.items()) { _, context in
            itemsJSON(try await self.read(context) { c in try PGFlowJSON.workQueues(on: c) })
        }
        add(.get, "/api/work-queues/{name}", scope: .read, tag: "work-queues", summary: "Read a work queue", response: Schema.object) { _, context in
            let name = context.path("name")
            guard let queue = try await self.read(context, { c in try PGFlowJSON.workQueue(name, on: c) }) else {
                throw APIProblem(.notFound, "unknown work queue \(name)")
            }
            return json(queue)
        }
        add(.put, "/api/work-queues/{name}", scope: .admin, tag: "work-queues", summary: "Create a work queue or set all its settings (limit included)",
            body: Schema.object(["priority": Schema.integer, "concurrency_limit": Schema.integer, "paused": Schema.boolean, "description": Schema.string]),
            response: Schema.object) { request, context in
            let body = try await JSONBody.read(request, context)
            let (priority, limit, paused, description) = (try body.int("priority") ?? 1, try body.int("concurrency_limit"),
                                                          try body.bool("paused") ?? false, try body.string("description"))
            let name = context.path("name")
            return json(try await self.change(context, "PUT /api/work-queues", object: name) { c in
                try PGFlowClient.createWorkQueue(name, priority: priority, concurrencyLimit: limit, paused: paused, description: description, on: c)
                return try PGFlowJSON.workQueue(name, on: c) ?? "{}"
            })
        }
        for (verb, paused) in [("pause", true), ("resume", false)] {
            add(.post, "/api/work-queues/{name}/\(verb)", scope: .admin, tag: "work-queues",
                summary: paused ? "Pause a work queue (claims skip it)" : "Resume a work queue", response: Schema.object) { _, context in
                let name = context.path("name")
                return json(try await self.change(context, "POST /api/work-queues/\(verb)", object: name) { c in
                    try PGFlowClient.setWorkQueuePaused(name, paused: paused, on: c)
                    return try PGFlowJSON.workQueue(name, on: c) ?? "{}"
                })
            }
        }
        add(.get, "/api/work-queues/{name}/preview", scope: .read, tag: "work-queues", summary: "The runs waiting in a queue, in claim order",
            query: [.query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "most runs (default 20)")],
            response: Schema.items()) { request, context in
            let (name, limit) = (context.path("name"), try request.intQuery("limit", default: 20))
            guard (1...1000).contains(limit) else { throw APIProblem(.unprocessableContent, "limit must be 1 to 1000") }
            return itemsJSON(try await self.read(context) { c in try PGFlowJSON.workQueuePreview(name, limit: limit, on: c) })
        }
        add(.delete, "/api/work-queues/{name}", scope: .admin, tag: "work-queues", summary: "Delete a work queue nothing uses", status: 204, response: nil) { _, context in
            let name = context.path("name")
            try await self.change(context, "DELETE /api/work-queues", object: name) { c in try PGFlowClient.deleteWorkQueue(name, on: c) }
            return noContent()
        }

        // concurrency limits
        add(.get, "/api/concurrency-limits", scope: .read, tag: "concurrency-limits", summary: "List concurrency limits with slots in use",
            response: Schema.items()) { _, context in
            itemsJSON(try await self.read(context) { c in try PGFlowJSON.concurrencyLimits(on: c) })
        }
        add(.get, "/api/concurrency-limits/{name}", scope: .read, tag: "concurrency-limits", summary: "Read a concurrency limit", response: Schema.object) { _, context in
            let name = context.path("name")
            guard let limit = try await self.read(context, { c in try PGFlowJSON.concurrencyLimit(name, on: c) }) else {
                throw APIProblem(.notFound, "unknown concurrency limit \(name)")
            }
            return json(limit)
        }
        add(.put, "/api/concurrency-limits/{name}", scope: .admin, tag: "concurrency-limits", summary: "Create or change a global or tag limit",
            body: Schema.object(["limit": Schema.integer, "active": Schema.boolean], required: ["limit"]), response: Schema.object) { request, context in
            let body = try await JSONBody.read(request, context)
            guard let limit = try body.int("limit") else { throw APIProblem(.unprocessableContent, "field limit is required") }
            let (active, name) = (try body.bool("active") ?? true, context.path("name"))
            return json(try await self.change(context, "PUT /api/concurrency-limits", object: name) { c in
                try PGFlowClient.createConcurrencyLimit(name, limit: limit, active: active, on: c)
                return try PGFlowJSON.concurrencyLimit(name, on: c) ?? "{}"
            })
        }
        add(.post, "/api/concurrency-limits/{name}/reset", scope: .admin, tag: "concurrency-limits",
            summary: "Release the slots explicit leases hold", response: Schema.object(["released": Schema.integer], required: ["released"])) { _, context in
            let name = context.path("name")
            let n = try await self.change(context, "POST /api/concurrency-limits/reset", object: name) { c in try PGFlowClient.resetConcurrencyLimit(name, on: c) }
            return json("{\"released\":\(n)}")
        }
        add(.delete, "/api/concurrency-limits/{name}", scope: .admin, tag: "concurrency-limits", summary: "Delete a global or tag limit",
            status: 204, response: nil) { _, context in
            let name = context.path("name")
            let existed = try await self.change(context, "DELETE /api/concurrency-limits", object: name) { c in try PGFlowClient.deleteConcurrencyLimit(name, on: c) }
            guard existed else { throw APIProblem(.notFound, "unknown global or tag concurrency limit \(name)") }
            return noContent()
        }

        // variables
        add(.get, "/api/variables", scope: .read, tag: "variables", summary: "List variables", response: Schema.items()) { _, context in
            itemsJSON(try await self.read(context) { c in try PGFlowJSON.variables(on: c) })
        }
        add(.get, "/api/variables/{key}", scope: .read, tag: "variables", summary: "Read a variable", response: Schema.object) { _, context in
            let key = context.path("key")
            guard let v = try await self.read(context, { c in try PGFlowJSON.variable(key, on: c) }) else { throw APIProblem(.notFound, "unknown variable \(key)") }
            return json(v)
        }
        add(.put, "/api/variables/{key}", scope: .admin, tag: "variables", summary: "Set a variable to a JSON value",
            body: Schema.object(["value": Schema.anyValue], required: ["value"]), response: Schema.object) { request, context in
            let body = try await JSONBody.read(request, context)
            guard let value = try body.anyValue("value") else { throw APIProblem(.unprocessableContent, "field value is required (any JSON value but null)") }
            let key = context.path("key")
            return json(try await self.change(context, "PUT /api/variables", object: key) { c in
                try PGFlowClient.setVariable(key, valueJSON: value, on: c)
                return try PGFlowJSON.variable(key, on: c) ?? "{}"
            })
        }
        add(.delete, "/api/variables/{key}", scope: .admin, tag: "variables", summary: "Delete a variable", status: 204, response: nil) { _, context in
            let key = context.path("key")
            let existed = try await self.change(context, "DELETE /api/variables", object: key) { c in try PGFlowClient.deleteVariable(key, on: c) }
            guard existed else { throw APIProblem(.notFound, "unknown variable \(key)") }
            return noContent()
        }

        // agents and flows
        add(.get, "/api/agents", scope: .read, tag: "agents", summary: "List agents with their heartbeats and active runs", response: Schema.items()) { _, context in
            itemsJSON(try await self.read(context) { c in try PGFlowJSON.agents(on: c) })
        }
        add(.get, "/api/flows", scope: .read, tag: "flows", summary: "List flows", response: Schema.items()) { _, context in
            itemsJSON(try await self.read(context) { c in try PGFlowJSON.flows(on: c) })
        }
    }
}
