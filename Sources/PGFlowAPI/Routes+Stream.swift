// GET /api/stream: Server-Sent Events of run state changes (all, one run's, or one deployment's) and,
// for one run, its log lines. Event ids are `<state id>:<log id>` (the newest flow_run_states and logs
// row ids sent so far), so a client that reconnects with Last-Event-ID gets the rows after them.
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import PGFlowClient

extension APIRoutes {
    func addStreamRoute(hub: EventHub) {
        add(.get, "/api/stream", scope: .read, tag: "stream",
            summary: "Live run state changes (and a run's logs) as Server-Sent Events; resumes from Last-Event-ID",
            query: [.query("flow_run", Schema.uuid, "only this run's events"), .query("deployment", Schema.string, "only this deployment's runs (flow/deployment)"),
                    .query("logs", Schema.boolean, "also the run's log lines (with flow_run)")],
            response: Schema.string, contentType: "text/event-stream") { request, context in
            var filter = StreamFilter()
            filter.flowRun = try request.uuidQuery("flow_run")
            filter.deployment = request.query("deployment")
            filter.logs = try request.boolQuery("logs") ?? false
            if filter.logs && filter.flowRun == nil { throw APIProblem(.badRequest, "logs=true needs flow_run=<id>") }
            let resume = request.headers[HTTPField.Name("Last-Event-ID")!].flatMap(Self.parseEventID)
            let f = filter
            try await self.authorize(context)
            await hub.waitUntilListening()
            // subscribe first, then read the backlog: nothing committed in between is lost (duplicates are skipped)
            let (subscription, stream) = try await hub.subscribe(filter, lastLogID: resume?.log ?? 0)
            let backlog: [StreamEvent]
            do {
                // after Last-Event-ID, or a run's whole history; also checks the filters (404 for unknown ones)
                backlog = try await self.read(context) { c -> [StreamEvent] in
                    let after = resume?.state ?? (f.flowRun != nil ? 0 : nil)
                    var events: [StreamEvent] = []
                    if let run = f.flowRun { _ = try PGFlowJSON.flowRun(run, on: c) }
                    if let after {
                        events += try PGFlowClient.stateEvents(after: after, flowRun: f.flowRun, deployment: f.deployment, limit: 1000, on: c)
                    } else if let d = f.deployment {
                        _ = try PGFlowJSON.deployment(d, on: c)
                    }
                    if f.logs, let run = f.flowRun {
                        events += try PGFlowClient.logEvents(flowRun: run, after: resume?.log ?? 0, limit: 1000, on: c)
                    }
                    return events
                }
            } catch {
                await hub.unsubscribe(subscription)
                throw error
            }
            let body = ResponseBody { writer in
                var cursor = (state: resume?.state ?? 0, log: resume?.log ?? 0)
                var sentStates = Set(backlog.filter { $0.kind == "state" }.map(\.id))
                do {
                    try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                    for e in backlog where e.kind == "state" || e.id > cursor.log { try await writer.write(Self.frame(e, &cursor)) }
                    for await message in stream {
                        switch message {
                        case .keepAlive: try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        case .event(let e):
                            if e.kind == "state" {
                                if sentStates.contains(e.id) { continue }
                                sentStates.insert(e.id)
                                if sentStates.count > 10_000 { sentStates.removeAll() }
                            } else if e.id <= cursor.log {
                                continue
                            }
                            try await writer.write(Self.frame(e, &cursor))
                        }
                    }
                    await hub.unsubscribe(subscription)
                    try await writer.finish(nil)
                } catch {
                    await hub.unsubscribe(subscription)
                    throw error
                }
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
    }

    /// One SSE frame; advances the client's cursor.
    static func frame(_ e: StreamEvent, _ cursor: inout (state: Int64, log: Int64)) -> ByteBuffer {
        if e.kind == "state" { cursor.state = max(cursor.state, e.id) } else { cursor.log = max(cursor.log, e.id) }
        return ByteBuffer(string: "id: \(cursor.state):\(cursor.log)\nevent: \(e.kind)\ndata: \(e.json)\n\n")
    }

    /// `<state id>:<log id>` (a bare number is a state id).
    static func parseEventID(_ text: String) -> (state: Int64, log: Int64)? {
        let parts = text.split(separator: ":")
        guard let state = parts.first.flatMap({ Int64($0) }) else { return nil }
        return (state, parts.count > 1 ? Int64(parts[1]) ?? 0 : 0)
    }
}
