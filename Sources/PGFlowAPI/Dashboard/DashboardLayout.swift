// The frame of every dashboard page (navigation, who is logged in, the live-stream hook) and the
// login and logout routes.
import Foundation
import HTTPTypes
import Hummingbird
import PGFlowClient

enum DashboardLayout {
    static let sections: [(String, String)] = [
        ("/", "Dashboard"), ("/flow-runs", "Flow runs"), ("/deployments", "Deployments"), ("/flows", "Flows"),
        ("/work-queues", "Work queues"), ("/concurrency-limits", "Concurrency limits"), ("/agents", "Agents"),
        ("/events", "Events"), ("/automations", "Automations"),
    ]

    /// The whole document of a page.
    static func render(_ page: DashboardPage, viewer: DashboardViewer?, noAuth: Bool, current: String = "") -> String {
        var out = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="color-scheme" content="light dark"><link rel="icon" href="data:,"><title>\(h(page.title)) · pgflow</title>
            <link rel="stylesheet" href="/ui/app.css"><script src="/ui/app.js" defer></script></head>
            <body\(page.stream.map { " data-stream=\"\(h($0))\"" } ?? "")>
            <a class="skip" href="#main">Skip to content</a>
            <header class="top"><nav aria-label="Main"><a class="brand" href="/">pgflow</a><ul>
            """
        for (href, label) in sections {
            out += "<li><a href=\"\(href)\" data-section=\"\(href)\">\(label)</a></li>"
        }
        out += "</ul>"
        if let viewer {
            if let name = viewer.name {
                out += "<span class=\"who\">\(h(name)) <span class=\"muted\">(\(viewer.scope.rawValue))</span></span>"
            } else if noAuth {
                out += "<span class=\"who warn\">no auth</span>"
            }
            if viewer.session != nil {
                out += "<form method=\"post\" action=\"/logout\" class=\"inline\">\(viewer.formFields(next: "/login"))<button type=\"submit\">Log out</button></form>"
            }
        }
        out += "</nav></header><main id=\"main\" tabindex=\"-1\">" + page.body + "</main></body></html>"
        return out
    }
}

extension DashboardRoutes {
    func addLoginRoutes() {
        api.router.get("/login") { request, _ in
            self.loginPage(next: Self.localPath(request.query("next")) ?? "/", error: nil, status: .ok)
        }
        api.router.post("/login") { request, context in
            let form = (try? await DashboardForm.read(request, context, limit: 64 * 1024)) ?? DashboardForm(query: "")
            let next = Self.localPath(form["next"]) ?? "/"
            guard self.sameOrigin(request) else { return self.loginPage(next: next, error: "refused: the form came from another site", status: .forbidden) }
            let token = (form["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { return self.loginPage(next: next, error: "paste an API token", status: .unauthorized) }
            do {
                let grant = try await self.pool.withConnection { c in try PGFlowClient.authorizeAPIToken(token, needs: "read", on: c) }
                guard grant != nil else {
                    return self.loginPage(next: next, error: "unknown or revoked API token (create one with `pgflow api token create --name NAME --scope read`)", status: .unauthorized)
                }
                var response = Self.redirect(next)
                response.headers[.setCookie] = Self.cookie(try self.session.seal(token: token), maxAge: Int(DashboardSession.lifetime))
                return response
            } catch {
                let problem = APIProblem.from(error)
                return self.loginPage(next: next, error: problem.detail, status: problem.status)
            }
        }
        api.router.post("/logout") { request, context in
            let form = (try? await DashboardForm.read(request, context, limit: 64 * 1024)) ?? DashboardForm(query: "")
            guard case .cookie(_, let value) = self.credential(request) else { return Self.redirect("/login") }
            guard self.sameOrigin(request), let csrf = form["_csrf"], self.session.checkCSRF(csrf, session: value) else {
                return self.html(self.errorPage(.forbidden, "refused: the form's CSRF token or origin is wrong"), nil, status: .forbidden)
            }
            var response = Self.redirect("/login")
            response.headers[.setCookie] = Self.cookie("", maxAge: 0)
            return response
        }
    }

    func loginPage(next: String, error: String?, status: HTTPResponse.Status) -> Response {
        var body = "<section class=\"login\"><h1>Log in to pgflow</h1>"
        if let error { body += "<p class=\"error\" role=\"alert\">\(h(error))</p>" }
        body += """
            <form method="post" action="/login"><input type="hidden" name="next" value="\(h(next))">
            <label for="token">API token</label>
            <input id="token" name="token" type="password" autocomplete="current-password" required autofocus placeholder="pgf_…">
            <button type="submit">Log in</button></form>
            <p class="muted">Create a token with <code>pgflow api token create --name NAME --scope read|run|admin</code>.
            A read token sees everything and changes nothing.</p></section>
            """
        return html(DashboardPage(title: "Log in", body: body), nil, status: status)
    }
}
