// /api/deployments: list, read, create or update, delete, pause, resume, run, schedules.
import Foundation
import Hummingbird
import PGFlowClient

extension APIRoutes {
    nonisolated(unsafe) static let deploymentBody = Schema.object([
        "entrypoint": Schema.string, "parameters": Schema.object, "work_queue": Schema.string, "tags": Schema.array(Schema.string),
        "description": Schema.string, "version": Schema.string, "concurrency_limit": Schema.integer, "collision_strategy": Schema.string,
        "retries": Schema.integer, "retry_delays": Schema.array(Schema.number), "retry_backoff": Schema.string,
        "retry_jitter": Schema.number, "paused": Schema.boolean, "missed_run_policy": Schema.string,
    ], required: ["entrypoint"])
    nonisolated(unsafe) static let runBody = Schema.object([
        "parameters": Schema.object, "tags": Schema.array(Schema.string), "name": Schema.string, "idempotency_key": Schema.string,
        "scheduled_time": Schema.dateTime, "work_queue": Schema.string,
    ])
    nonisolated(unsafe) static let scheduleBody = Schema.object([
        "kind": Schema.string, "expression": Schema.string, "timezone": Schema.string, "parameters": Schema.object,
        "active": Schema.boolean, "anchor_date": Schema.dateTime,
    ], required: ["kind", "expression"])

    func addDeploymentRoutes() {
        let one = "/api/deployments/{flow}/{deployment}"

        add(.get, "/api/deployments", scope: .read, tag: "deployments", summary: "List deployments",
            query: [.query("flow", Schema.string, "only this flow's"), .query("work_queue", Schema.string, "only this queue's"),
                    .query("tag", Schema.string, "only those with this tag"), .query("paused", Schema.boolean, "only paused (true) or active (false)")],
            response: Schema.items()) { request, context in
            let (flow, queue, tag, paused) = (request.query("flow"), request.query("work_queue"), request.query("tag"), try request.boolQuery("paused"))
            return itemsJSON(try await self.read(context) { c in try PGFlowJSON.deployments(flow: flow, workQueue: queue, tag: tag, paused: paused, on: c) })
        }
        add(.get, one, scope: .read, tag: "deployments", summary: "Read a deployment", response: Schema.object) { _, context in
            let n = context.deploymentName
            return json(try await self.read(context) { c in try PGFlowJSON.deployment(n, on: c) })
        }
        add(.put, one, scope: .admin, tag: "deployments", summary: "Create or update a deployment (every setting; absent ones get their defaults)",
            body: Self.deploymentBody, response: Schema.object) { request, context in
            let body = try await JSONBody.read(request, context)
            var spec = DeploymentSpec(flow: context.path("flow"), name: context.path("deployment"), entrypoint: try body.requiredString("entrypoint"))
            spec.parametersJSON = try body.object("parameters") ?? "{}"
            spec.workQueue = try body.string("work_queue") ?? "default"
            spec.tags = try body.strings("tags") ?? []
            spec.description = try body.string("description")
            spec.version = try body.string("version")
            spec.concurrencyLimit = try body.int("concurrency_limit")
            spec.collisionStrategy = try body.string("collision_strategy") ?? "ENQUEUE"
            spec.retries = try body.int("retries") ?? 0
            spec.retryDelays = try body.doubles("retry_delays") ?? [0]
            spec.retryBackoff = try body.string("retry_backoff") ?? "fixed"
            spec.retryJitter = try body.double("retry_jitter") ?? 0
            spec.paused = try body.bool("paused") ?? false
            if let policy = try body.string("missed_run_policy") {
                guard let p = MissedRunPolicy(rawValue: policy) else {
                    throw APIProblem(.unprocessableContent, "missed_run_policy must be run_all, latest or skip")
                }
                spec.missedRunPolicy = p
            }
            let n = context.deploymentName, s = spec
            return json(try await self.change(context, "PUT /api/deployments", object: n) { c in
                try PGFlowClient.createDeployment(s, on: c)
                return try PGFlowJSON.deployment(n, on: c)
            })
        }
        add(.delete, one, scope: .admin, tag: "deployments", summary: "Delete a deployment (its runs that never started too)", status: 204, response: nil) { _, context in
            let n = context.deploymentName
            _ = try await self.change(context, "DELETE /api/deployments", object: n) { c in try PGFlowClient.deleteDeployment(n, on: c) }
            return noContent()
        }
        for (verb, paused) in [("pause", true), ("resume", false)] {
            add(.post, one + "/" + verb, scope: .admin, tag: "deployments", summary: paused ? "Pause a deployment's schedules" : "Resume a deployment's schedules",
                response: Schema.object) { _, context in
                let n = context.deploymentName
                return json(try await self.change(context, "POST /api/deployments/\(verb)", object: n) { c in
                    try PGFlowClient.setDeploymentPaused(n, paused: paused, on: c)
                    return try PGFlowJSON.deployment(n, on: c)
                })
            }
        }
        add(.post, one + "/runs", scope: .run, tag: "deployments", summary: "Create a run of a deployment",
            body: Self.runBody, status: 201, response: Schema.flowRun) { request, context in
            let body = try await JSONBody.read(request, context)
            var run = RunRequest()
            run.parametersJSON = try body.object("parameters") ?? "{}"
            run.tags = try body.strings("tags")
            run.name = try body.string("name")
            run.idempotencyKey = try body.string("idempotency_key")
            run.scheduledTime = try body.date("scheduled_time")
            run.workQueue = try body.string("work_queue")
            let n = context.deploymentName, r = run
            let created = try await self.change(context, "POST /api/deployments/runs", object: n, detail: { (r: (String, String)) in "{\"flow_run_id\":\"\(r.0)\"}" }) { c in
                let id = try PGFlowClient.runDeployment(n, r, on: c)
                return (id.uuidString.lowercased(), try PGFlowJSON.flowRun(id, on: c))
            }
            return json(created.1, status: .created)
        }
        add(.get, one + "/schedules", scope: .read, tag: "deployments", summary: "List a deployment's schedules", response: Schema.items()) { _, context in
            let n = context.deploymentName
            return itemsJSON(try await self.read(context) { c in try PGFlowJSON.schedules(deployment: n, on: c) })
        }
        add(.post, one + "/schedules", scope: .admin, tag: "deployments", summary: "Add a schedule (cron, interval or rrule)",
            body: Self.scheduleBody, status: 201, response: Schema.object(["id": Schema.uuid], required: ["id"])) { request, context in
            let body = try await JSONBody.read(request, context)
            var spec = ScheduleSpec(kind: try body.requiredString("kind"), expression: try body.requiredString("expression"))
            spec.timeZone = try body.string("timezone") ?? "UTC"
            spec.parametersJSON = try body.object("parameters") ?? "{}"
            spec.active = try body.bool("active") ?? true
            spec.anchorDate = try body.date("anchor_date")
            let n = context.deploymentName, s = spec
            let id = try await self.change(context, "POST /api/deployments/schedules", object: n, detail: { (id: String) in "{\"schedule_id\":\"\(id)\"}" }) { c in
                try PGFlowClient.createDeploymentSchedule(deployment: n, s, on: c).uuidString.lowercased()
            }
            return json("{\"id\":\"\(id)\"}", status: .created)
        }
        add(.delete, one + "/schedules/{schedule}", scope: .admin, tag: "deployments", summary: "Delete a schedule and its future scheduled runs",
            status: 204, response: nil) { _, context in
            let (id, n) = (try context.pathUUID("schedule"), context.deploymentName)
            _ = try await self.change(context, "DELETE /api/deployments/schedules", object: "\(n) \(id.uuidString.lowercased())") { c in
                try PGFlowClient.deleteDeploymentSchedule(deployment: n, id: id, on: c)
            }
            return noContent()
        }
    }
}

extension APIRequestContext {
    /// `flow/deployment` from the path.
    var deploymentName: String { "\(path("flow"))/\(path("deployment"))" }
}
