// The event endpoints through a real pgflow-api process: emit and list events, inbound webhooks,
// automations, notifications; bad input answers 4xx.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct EventAPITests {
    @Test func eventsWebhooksAutomationsAndNotifications() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db)
            let (read, run, admin) = (try createToken(c, "reader", "read"), try createToken(c, "runner", "run"), try createToken(c, "admin", "admin"))

            let emitted = try await api.client(run).post("/api/events", #"{"event": "acme.file.arrived", "resource": {"id": "s3://b/k"}, "payload": {"rows": 3}}"#)
            #expect(emitted.status == 201, "\(emitted)")
            #expect(try await api.client(read).post("/api/events", #"{"event": "acme.x"}"#).status == 403)
            #expect(try await api.client(run).post("/api/events", #"{"event": "pgflow.flow-run.Completed"}"#).status == 422)
            #expect(try await api.client(run).post("/api/events", #"{"event": "acme.x", "payload": [1]}"#).status == 422)
            #expect(try await api.client(run).post("/api/events", #"{"event": "acme.x", "related": {}}"#).status == 422)
            #expect(try await api.client(run).post("/api/events", #"{"resource": {}}"#).status == 422)
            let listed = try await api.client(read).get("/api/events?event=acme.*")
            #expect(listed.items.count == 1 && listed.items.first?["resource_id"] as? String == "s3://b/k", "\(listed)")
            #expect(try await api.client(read).get("/api/events?limit=0").status == 422)
            #expect(try await api.client(read).get("/api/events?before_seq=x").status == 400)

            // inbound webhook: the template maps the body; no token needed, an unknown slug is 404
            try c.query(#"SELECT pgflow.set_webhook('gh', '{"event": "github.push", "resource": {"id": "{{ body.repository }}"}, "payload": "{{ body }}"}')"#)
            let hook = try await api.client().post("/api/hooks/gh", #"{"repository": "acme/etl", "ref": "main"}"#)
            #expect(hook.status == 201, "\(hook)")
            #expect(try c.query("SELECT payload ->> 'ref' FROM pgflow.events WHERE event = 'github.push' AND resource_id = 'acme/etl'").scalar(String.self) == "main")
            #expect(try await api.client().post("/api/hooks/nope", "{}").status == 404)
            #expect(try await api.client().post("/api/hooks/gh", "{nope").status == 400)

            // automations
            let put = try await api.client(admin).put("/api/automations/on-file",
                #"{"trigger": {"match": "acme.file.*"}, "actions": [{"type": "emit-event", "event": "acme.seen"}]}"#)
            #expect(put.status == 200 && put.object["name"] as? String == "on-file", "\(put)")
            #expect(try await api.client(run).put("/api/automations/x", #"{"trigger": {"match": "a"}, "actions": []}"#).status == 403)
            #expect(try await api.client(admin).put("/api/automations/x", #"{"trigger": {"type": "nope"}, "actions": [{"type": "cancel-flow-run"}]}"#).status == 422)
            #expect(try await api.client(admin).put("/api/automations/x", #"{"trigger": {"match": "a"}}"#).status == 422)
            #expect(try await api.client(read).get("/api/automations").items.count == 1)
            #expect(try await api.client(admin).post("/api/automations/on-file/pause").object["paused"] as? Bool == true)
            #expect(try await api.client(read).get("/api/automations/nope").status == 404)
            #expect(try await api.client(admin).send("DELETE", "/api/automations/on-file").status == 204)
            #expect(try await api.client(admin).send("DELETE", "/api/automations/on-file").status == 404)

            // notifications
            #expect(try await api.client(read).get("/api/notifications?dead=true").items.isEmpty)
            #expect(try await api.client(admin).post("/api/notifications/12/retry").status == 404)
            #expect(try await api.client(admin).post("/api/notifications/x/retry").status == 400)
        }
    }
}
