// /api/flow-runs and /api/task-runs: listings with filters and keyset pagination, one run with its
// states, task runs and logs, and the run operations (cancel, retry, resume, delete).
import Foundation
import Hummingbird
import PGFlowClient

extension APIRoutes {
    nonisolated(unsafe) static let pageQuery: [APIParameter] = [
        .query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "page size (default 50)"),
        .query("cursor", Schema.string, "next_cursor of the previous page"),
    ]

    func addFlowRunRoutes() {
        add(.get, "/api/flow-runs", scope: .read, tag: "flow-runs", summary: "List flow runs, newest first",
            query: [.query("state_type", Schema.string, "e.g. FAILED"), .query("state_name", Schema.string, "e.g. Late"),
                    .query("flow", Schema.string, "flow name"), .query("deployment", Schema.string, "flow/deployment"),
                    .query("tag", Schema.string, "a tag"), .query("work_queue", Schema.string, "a work queue"),
                    .query("since", Schema.dateTime, "created at or after"), .query("until", Schema.dateTime, "created before")] + Self.pageQuery,
            response: Schema.page(Schema.flowRun)) { request, context in
            var f = FlowRunFilter()
            f.stateType = request.query("state_type")
            f.stateName = request.query("state_name")
            f.flow = request.query("flow")
            f.deployment = request.query("deployment")
            f.tag = request.query("tag")
            f.workQueue = request.query("work_queue")
            f.since = try request.dateQuery("since")
            f.until = try request.dateQuery("until")
            f.limit = try request.intQuery("limit", default: 50)
            f.cursor = request.query("cursor")
            let filter = f
            return pageJSON(try await self.read(context) { c in try PGFlowJSON.flowRuns(filter, on: c) })
        }
        add(.get, "/api/flow-runs/{id}", scope: .read, tag: "flow-runs", summary: "Read a flow run (with its result)", response: Schema.flowRun) { _, context in
            let id = try context.pathUUID("id")
            return json(try await self.read(context) { c in try PGFlowJSON.flowRun(id, on: c) })
        }
        add(.get, "/api/flow-runs/{id}/states", scope: .read, tag: "flow-runs", summary: "A flow run's states, oldest first", response: Schema.items()) { _, context in
            let id = try context.pathUUID("id")
            return itemsJSON(try await self.read(context) { c in try PGFlowJSON.flowRunStates(id, on: c) })
        }
        add(.get, "/api/flow-runs/{id}/task-runs", scope: .read, tag: "flow-runs", summary: "A flow run's task runs, newest first",
            query: Self.pageQuery, response: Schema.page(Schema.object)) { request, context in
            let id = try context.pathUUID("id")
            let (limit, cursor) = (try request.intQuery("limit", default: 50), request.query("cursor"))
            return pageJSON(try await self.read(context) { c in
                _ = try PGFlowJSON.flowRun(id, on: c)  // P0002 for an unknown run
                return try PGFlowJSON.taskRuns(flowRun: id, stateType: nil, limit: limit, cursor: cursor, on: c)
            })
        }
        add(.get, "/api/flow-runs/{id}/logs", scope: .read, tag: "flow-runs", summary: "A flow run's log lines after log id `after`, oldest first",
            query: [.query("after", Schema.integer, "the last log id seen (default 0)"),
                    .query("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "most lines (default 1000)")],
            response: Schema.items()) { request, context in
            let id = try context.pathUUID("id")
            let (after, limit) = (try request.intQuery("after", default: 0), try request.intQuery("limit", default: 1000))
            return itemsJSON(try await self.read(context) { c in try PGFlowJSON.flowRunLogs(id, after: Int64(after), limit: limit, on: c) })
        }
        for (verb, summary) in [("cancel", "Cancel a flow run"), ("retry", "Retry a finished flow run"), ("resume", "Resume a paused flow run")] {
            add(.post, "/api/flow-runs/{id}/\(verb)", scope: .run, tag: "flow-runs", summary: summary + " (409 when the state machine refuses)",
                response: Schema.transition, conflict: Schema.transition) { _, context in
                let id = try context.pathUUID("id")
                let result = try await self.change(context, "POST /api/flow-runs/\(verb)", object: id.uuidString.lowercased(),
                                                   detail: { "{\"status\":\"\($0.status.rawValue)\"}" }) { c -> TransitionResult in
                    switch verb {
                    case "cancel": return try PGFlowClient.cancelFlowRun(id, message: "cancelled through the API", on: c)
                    case "retry": return try PGFlowClient.retryFlowRun(id, on: c)
                    default: return try PGFlowClient.resumeFlowRun(id, on: c)
                    }
                }
                return transitionJSON(result)
            }
        }
        add(.delete, "/api/flow-runs/{id}", scope: .run, tag: "flow-runs", summary: "Delete a flow run that is not in progress", status: 204, response: nil) { _, context in
            let id = try context.pathUUID("id")
            try await self.change(context, "DELETE /api/flow-runs", object: id.uuidString.lowercased()) { c in try PGFlowClient.deleteFlowRun(id, on: c) }
            return noContent()
        }
        add(.get, "/api/task-runs", scope: .read, tag: "task-runs", summary: "List task runs, newest first",
            query: [.query("flow_run", Schema.uuid, "only this flow run's"), .query("state_type", Schema.string, "e.g. FAILED")] + Self.pageQuery,
            response: Schema.page(Schema.object)) { request, context in
            let (run, type) = (try request.uuidQuery("flow_run"), request.query("state_type"))
            let (limit, cursor) = (try request.intQuery("limit", default: 50), request.query("cursor"))
            return pageJSON(try await self.read(context) { c in try PGFlowJSON.taskRuns(flowRun: run, stateType: type, limit: limit, cursor: cursor, on: c) })
        }
        add(.get, "/api/task-runs/{id}", scope: .read, tag: "task-runs", summary: "Read a task run", response: Schema.object) { _, context in
            let id = try context.pathUUID("id")
            guard let run = try await self.read(context, { c in try PGFlowJSON.taskRun(id, on: c) }) else {
                throw APIProblem(.notFound, "unknown task run \(id.uuidString.lowercased())")
            }
            return json(run)
        }
    }
}
