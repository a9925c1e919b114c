// The dashboard's HTML routes against a real pgflow-api and PostgreSQL: who may see pages, sessions,
// CSRF refusals, escaping of hostile names, read-only tokens, --no-ui. (The browser tests in
// Tests/browser drive the same pages in Chromium.)
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite(.serialized) struct DashboardProcessTests {
    /// `name="_csrf" value="…"` of a page.
    func csrf(_ page: String) -> String? {
        guard let r = page.range(of: #"name="_csrf" value="[^"]*""#, options: .regularExpression) else { return nil }
        return String(page[r].dropFirst(#"name="_csrf" value=""#.count).dropLast())
    }

    func form(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
    }

    func paused(_ c: PostgresConnection, _ queue: String) throws -> Bool {
        try c.query("SELECT paused FROM pgflow.work_queues WHERE name = $1", [queue]).scalar(Bool.self)
    }

    @Test func pagesNeedATokenOrASessionAndActionsNeedTheCSRFToken() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db)
            let (read, admin) = (try createToken(c, "reader", "read"), try createToken(c, "admin", "admin"))
            try c.query("SELECT pgflow.create_work_queue('etl')")

            // no credentials: pages send you to the login form; unknown tokens are refused
            let anonymous = try await api.client().get("/flow-runs?state=Failed")
            #expect(anonymous.status == 303 && anonymous.headers["location"] == "/login?next=%2Fflow-runs%3Fstate%3DFailed", "\(anonymous)")
            #expect(try await api.client().get("/login").status == 200)
            #expect(try await api.client("pgf_unknown").get("/").status == 401)
            let page = try await api.client(read).get("/")
            #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8" && page.body.contains("<h1>Dashboard</h1>"), "\(page)")
            #expect(page.headers["content-security-policy"]?.contains("script-src 'self'") == true)
            #expect(try await api.client().get("/ui/app.css").status == 200)

            // login: a bad token stays on the form; a good one gets an HttpOnly, SameSite=Strict cookie
            #expect(try await api.client().send("POST", "/login", body: form([("token", "pgf_nope")])).status == 401)
            let login = try await api.client().send("POST", "/login", body: form([("token", admin), ("next", "/work-queues")]))
            let setCookie = try #require(login.headers["set-cookie"], "\(login)")
            #expect(login.status == 303 && login.headers["location"] == "/work-queues")
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"), "\(setCookie)")
            let cookie = String(setCookie.split(separator: ";")[0])
            let session = ["Cookie": cookie]
            let queues = try await api.client().send("GET", "/work-queues", headers: session)
            #expect(queues.status == 200 && queues.body.contains("pgflow-agent --queue etl"), "\(queues)")
            // the cookie reads the API (for the pages' scripts and the live stream), never changes it
            #expect(try await api.client().send("GET", "/api/work-queues", headers: session).status == 200)
            #expect(try await api.client().send("POST", "/api/work-queues/etl/pause", headers: session).status == 401)
            // a forged or altered cookie is no session
            #expect(try await api.client().send("GET", "/", headers: ["Cookie": cookie + "x"]).status == 303)

            // actions with the cookie need the session's CSRF token and a same-origin Origin
            let token = try #require(csrf(queues.body))
            let pause = [("name", "etl"), ("action", "pause"), ("next", "/work-queues")]
            #expect(try await api.client().send("POST", "/work-queues", body: form(pause), headers: session).status == 403)
            #expect(try await api.client().send("POST", "/work-queues", body: form(pause + [("_csrf", "AAAA")]), headers: session).status == 403)
            #expect(try await api.client().send("POST", "/work-queues", body: form(pause + [("_csrf", token)]),
                                                headers: session.merging(["Origin": "http://evil.example"]) { a, _ in a }).status == 403)
            #expect(try paused(c, "etl") == false)
            let done = try await api.client().send("POST", "/work-queues", body: form(pause + [("_csrf", token)]),
                                                   headers: session.merging(["Origin": "http://127.0.0.1:\(api.port)"]) { a, _ in a })
            #expect(done.status == 303 && done.headers["location"]?.hasPrefix("/work-queues?notice=Paused") == true, "\(done)")
            #expect(try paused(c, "etl") == true)
            // another session's CSRF token does not fit this one
            let other = try await api.client().send("POST", "/login", body: form([("token", admin)]))
            let otherCookie = String(try #require(other.headers["set-cookie"]).split(separator: ";")[0])
            let resume = [("name", "etl"), ("action", "resume"), ("_csrf", token)]
            #expect(try await api.client().send("POST", "/work-queues", body: form(resume), headers: ["Cookie": otherCookie]).status == 403)
            #expect(try paused(c, "etl") == true)
            // every change from the dashboard is audited like the API's
            #expect(try c.query("SELECT count(*) FROM pgflow.api_audit WHERE action = 'UI POST /work-queues/pause' AND token_name = 'admin' AND result = 'ok'").scalar(Int.self) == 1)
            // a revoked token ends its sessions at once
            try c.query("SELECT pgflow.revoke_api_token('admin')")
            #expect(try await api.client().send("GET", "/work-queues", headers: session).status == 303)
        }
    }

    @Test func aReadOnlyTokenSeesNoButtonsAndIsRefused() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db)
            let (read, run, admin) = (try createToken(c, "reader", "read"), try createToken(c, "runner", "run"), try createToken(c, "admin", "admin"))
            try c.query("SELECT pgflow.create_deployment('etl', 'daily', 'true')")
            try c.query("SELECT pgflow.create_concurrency_limit('db', 2)")
            let runID = try c.query("SELECT pgflow.run_deployment('etl/daily')").scalar(UUID.self).uuidString.lowercased()
            for path in ["/", "/flow-runs", "/flow-runs/\(runID)", "/deployments", "/deployments/etl/daily", "/work-queues", "/concurrency-limits", "/agents", "/flows"] {
                let page = try await api.client(read).get(path)
                #expect(page.status == 200, "\(path): \(page)")
                #expect(!page.body.contains("name=\"action\"") && !page.body.contains("name=\"id\""), "\(path) shows an action to a read token")
                if !["/", "/agents", "/flows"].contains(path) {
                    #expect(try await api.client(admin).get(path).body.contains("name=\"action\""), "\(path) shows actions to an admin")
                }
            }
            // with the bearer header (no cookie, so no CSRF token needed) the token's scope decides
            #expect(try await api.client(read).send("POST", "/work-queues", body: "name=default&action=pause").status == 403)
            #expect(try await api.client(read).send("POST", "/flow-runs/\(runID)", body: "action=cancel").status == 403)
            #expect(try await api.client(run).send("POST", "/work-queues", body: "name=default&action=pause").status == 403)
            #expect(try c.query("SELECT state_name FROM pgflow.flow_runs").scalar(String.self) == "Scheduled")
            #expect(try await api.client(run).send("POST", "/flow-runs/\(runID)", body: "action=cancel").status == 303)
            #expect(try c.query("SELECT state_name FROM pgflow.flow_runs").scalar(String.self) == "Cancelled")
            #expect(try await api.client(run).get("/work-queues").body.contains("name=\"action\"") == false)  // queue actions need admin
            #expect(try await api.client(admin).send("POST", "/work-queues", body: "name=default&action=pause").status == 303)
            #expect(try paused(c, "default"))
        }
    }

    @Test func hostileNamesAreEscaped() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db)
            let admin = try createToken(c, "admin", "admin")
            try c.query("SELECT pgflow.create_deployment($1, $2, 'true', $3::jsonb)",
                        ["<script>alert(1)<script>", "x\"><img src=x onerror=alert(2)>", "{\"<b>k</b>\": \"</textarea><script>alert(4)</script>\"}"])
            let runID = try c.query("SELECT pgflow.run_deployment($1, p_flow_run_name => $2)",
                                    ["<script>alert(1)<script>/x\"><img src=x onerror=alert(2)>", "</script><script>alert(3)</script>"]).scalar(UUID.self)
            for path in ["/", "/flow-runs", "/flow-runs/\(runID.uuidString.lowercased())", "/deployments", "/flows",
                         "/deployments/%3Cscript%3Ealert(1)%3Cscript%3E/x%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(2)%3E",
                         "/flow-runs?flow=%3Cscript%3Ealert(1)%3Cscript%3E"] {
                let page = try await api.client(admin).get(path)
                #expect(page.status == 200, "\(path): \(page)")
                for hostile in ["<script>alert", "<img src=x", "</textarea><script>", "<b>k</b>"] {
                    #expect(!page.body.contains(hostile), "\(path) contains \(hostile) unescaped")
                }
                if path != "/" { #expect(page.body.contains("&lt;script&gt;alert("), "\(path) shows the name as text") }
            }
            // a notice or error in the query string is text too
            let notice = try await api.client(admin).get("/flows?error=%3Cscript%3Ealert(5)%3C/script%3E")
            #expect(notice.body.contains("&lt;script&gt;alert(5)") && !notice.body.contains("<script>alert(5)"))
            // and an action's next page never leaves the site
            let away = try await api.client(admin).send("POST", "/work-queues", body: "name=default&action=pause&next=//evil.example/")
            #expect(away.status == 303 && away.headers["location"]?.hasPrefix("/work-queues?") == true, "\(away)")
        }
    }

    @Test func noUILeavesOnlyTheAPI() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let api = try await APIProcess.start(db, ["--no-ui"])
            let read = try createToken(c, "reader", "read")
            #expect(try await api.client(read).get("/").status == 404)
            #expect(try await api.client(read).get("/flow-runs").status == 404)
            #expect(try await api.client(read).get("/api/flow-runs").status == 200)
        }
    }
}
