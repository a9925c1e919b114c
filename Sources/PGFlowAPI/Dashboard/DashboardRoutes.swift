// The web dashboard: server-rendered pages at /, /flow-runs, /deployments, … served by pgflow-api
// beside the JSON API (`--no-ui` leaves them out). Pages read through the SQL functions and views the
// API reads (PGFlowJSON); actions call the API's own client functions through `APIRoutes.change`, so
// they are authorized, audited and refused exactly as the API's routes are. A page is reached with a
// session cookie (POST /login with an API token) or the API's `Authorization: Bearer` header; every
// action (a POST) needs the session's CSRF token and a same-origin Origin header when it comes with
// the cookie. A read-only token sees no action buttons and its POSTs are refused (403).
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PGFlowClient
import PGFlowPostgres

/// Who is looking at a page, and what they may do.
struct DashboardViewer: Sendable {
    /// The API token (nil: the API runs with --insecure-no-auth).
    let token: String?
    /// The token's name, for the header.
    let name: String?
    /// The token's scope.
    let scope: APIScope
    /// The session cookie the request came with (nil: a bearer token or no auth).
    let session: String?
    /// The CSRF token forms carry.
    let csrf: String

    var canRun: Bool { scope == .run || scope == .admin }
    var canAdmin: Bool { scope == .admin }

    /// The hidden form fields every action form carries.
    func formFields(next: String) -> String {
        "<input type=\"hidden\" name=\"_csrf\" value=\"\(h(csrf))\"><input type=\"hidden\" name=\"next\" value=\"\(h(next))\">"
    }

    /// A one-button form that POSTs `name` with action pause (or resume, when `paused`) to `path`,
    /// coming back to `path` (work queues, automations).
    func pauseResumeForm(_ path: String, name: String, paused: Bool) -> String {
        let verb = paused ? "resume" : "pause"
        return "<form method=\"post\" action=\"\(h(path))\" class=\"inline\">" + formFields(next: path)
            + "<input type=\"hidden\" name=\"name\" value=\"\(h(name))\"><button type=\"submit\" name=\"action\" value=\"\(verb)\" aria-label=\"\(verb.capitalized) \(h(name))\">\(verb.capitalized)</button></form>"
    }
}

/// What a page handler returns: its title, its main content, and the live stream it listens to.
struct DashboardPage: Sendable {
    var title: String
    var body: String
    /// The `/api/stream` query the page's script follows (nil: no live updates).
    var stream: String?
    var status: HTTPResponse.Status = .ok
}

/// How a request identified itself.
enum DashboardCredential {
    case none, open
    case bearer(String)
    case cookie(token: String, value: String)
}

/// A urlencoded form.
struct DashboardForm: Sendable {
    let fields: [(String, String)]

    static func read(_ request: Request, _ context: APIRequestContext, limit: Int) async throws -> DashboardForm {
        let buffer = try await request.body.collect(upTo: limit)
        return DashboardForm(query: String(buffer: buffer))
    }

    init(query: String) {
        fields = query.split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ") }
            guard let key = parts.first?.removingPercentEncoding else { return nil }
            return (key, parts.count > 1 ? parts[1].removingPercentEncoding ?? "" : "")
        }
    }

    subscript(_ key: String) -> String? { fields.first { $0.0 == key }?.1 }
    func all(_ key: String) -> [String] { fields.filter { $0.0 == key }.map(\.1) }
}

/// The dashboard's routes over the API's router, pool and helpers.
final class DashboardRoutes: @unchecked Sendable {
    let api: APIRoutes
    let session: DashboardSession
    var pool: PostgresPool { api.pool }
    var noAuth: Bool { api.configuration.insecureNoAuth }

    init(api: APIRoutes, session: DashboardSession) {
        self.api = api
        self.session = session
    }

    /// Every page, action and asset.
    func addRoutes() {
        let router = api.router
        router.get("/ui/app.css") { _, _ in Self.asset(DashboardAssets.css, "text/css; charset=utf-8") }
        router.get("/ui/app.js") { _, _ in Self.asset(DashboardAssets.js, "text/javascript; charset=utf-8") }
        addLoginRoutes()
        addHomePage()
        addFlowRunPages()
        addDeploymentPages()
        addConfigurationPages()
        addEventPages()
    }

    // MARK: credentials

    func credential(_ request: Request) -> DashboardCredential {
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            return .bearer(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces))
        }
        if noAuth { return .open }
        if let value = DashboardSession.cookie(DashboardSession.cookieName, in: request.headers[.cookie]), let token = session.open(value) {
            return .cookie(token: token, value: value)
        }
        return .none
    }

    /// The viewer of a credential, checked on `c` (nil for an unknown or revoked token).
    func viewer(_ credential: DashboardCredential, on c: PostgresConnection) throws -> DashboardViewer? {
        switch credential {
        case .none: return nil
        case .open: return DashboardViewer(token: nil, name: nil, scope: .admin, session: nil, csrf: session.csrfToken(session: ""))
        case .bearer(let token), .cookie(let token, _):
            guard let grant = try PGFlowClient.authorizeAPIToken(token, needs: "read", on: c) else { return nil }
            var cookie: String? = nil
            if case .cookie(_, let value) = credential { cookie = value }
            return DashboardViewer(token: token, name: grant.name, scope: APIScope(rawValue: grant.scope) ?? .read,
                                   session: cookie, csrf: session.csrfToken(session: cookie ?? ""))
        }
    }

    // MARK: pages

    /// Adds a page: the viewer is checked and the page read on one pooled connection.
    func page(_ path: String, _ render: @escaping @Sendable (Request, APIRequestContext, DashboardViewer, PostgresConnection) throws -> DashboardPage) {
        api.router.get(RouterPath(path)) { request, context in
            let credential = self.credential(request)
            if case .none = credential { return self.toLogin(request) }
            do {
                let (viewer, page) = try await self.pool.withConnection { c -> (DashboardViewer?, DashboardPage?) in
                    guard let viewer = try self.viewer(credential, on: c) else { return (nil, nil) }
                    return (viewer, try render(request, context, viewer, c))
                }
                guard let viewer, let page else {
                    if case .cookie = credential { return self.toLogin(request, clearCookie: true) }
                    return self.html(self.errorPage(.unauthorized, "unknown or revoked API token"), nil, status: .unauthorized)
                }
                return self.html(page, viewer, status: page.status)
            } catch {
                let problem = APIProblem.from(error)
                return self.html(self.errorPage(problem.status, problem.detail), nil, status: problem.status)
            }
        }
    }

    /// What an action answers.
    enum Outcome: Sendable {
        /// Back to the form's `next` page with a notice.
        case done(String)
        /// A page of its own (e.g. a confirmation).
        case page(DashboardPage)
    }

    /// Adds an action (a form POST): checks the CSRF token and origin for cookie and open sessions, then
    /// runs `perform`, which changes things through `change(scope:…)`; refusals (401/403) answer with
    /// their status, other errors go back to the page with the message.
    func action(_ path: String, _ perform: @escaping @Sendable (Request, APIRequestContext, DashboardViewer, DashboardForm) async throws -> Outcome) {
        api.router.post(RouterPath(path)) { request, context in
            let credential = self.credential(request)
            let form: DashboardForm
            do {
                form = try await DashboardForm.read(request, context, limit: self.api.configuration.maxBodyBytes)
            } catch {
                return self.html(self.errorPage(.contentTooLarge, "the form is too large"), nil, status: .contentTooLarge)
            }
            let next = Self.localPath(form["next"]) ?? request.uri.path
            switch credential {
            case .none:
                return self.html(self.errorPage(.unauthorized, "log in first (or send Authorization: Bearer <token>)"), nil, status: .unauthorized)
            case .open, .cookie:
                let value: String
                if case .cookie(_, let v) = credential { value = v } else { value = "" }
                guard self.sameOrigin(request), let csrf = form["_csrf"], self.session.checkCSRF(csrf, session: value) else {
                    return self.html(self.errorPage(.forbidden, "refused: the form's CSRF token or origin is wrong; reload the page and try again"), nil, status: .forbidden)
                }
            case .bearer: break
            }
            do {
                guard let viewer = try await self.pool.withConnection({ c in try self.viewer(credential, on: c) }) else {
                    return self.html(self.errorPage(.unauthorized, "unknown or revoked API token"), nil, status: .unauthorized)
                }
                switch try await perform(request, context, viewer, form) {
                case .done(let notice): return Self.redirect(Self.with(next, "notice", notice))
                case .page(let page): return self.html(page, viewer, status: page.status)
                }
            } catch {
                let problem = APIProblem.from(error)
                if problem.status == .unauthorized || problem.status == .forbidden || problem.status.code >= 500 {
                    return self.html(self.errorPage(problem.status, problem.detail), nil, status: problem.status)
                }
                return Self.redirect(Self.with(next, "error", problem.detail))
            }
        }
    }

    /// Runs a change as the viewer with the scope it needs (the API's `change`: token check, audit row).
    func change<T: Sendable>(_ viewer: DashboardViewer, _ context: APIRequestContext, scope: APIScope, _ action: String, object: String?,
                             _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        var context = context
        context.auth = viewer.token.map { PendingAuth(token: $0, scope: scope) }
        return try await api.change(context, "UI " + action, object: object, body)
    }

    /// Whether the request's Origin (when sent) is this server.
    func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[HTTPField.Name("Origin")!] else { return true }
        guard let host = request.head.authority ?? request.headers[HTTPField.Name("Host")!] else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    // MARK: responses

    func html(_ page: DashboardPage, _ viewer: DashboardViewer?, status: HTTPResponse.Status) -> Response {
        let text = DashboardLayout.render(page, viewer: viewer, noAuth: noAuth)
        return Response(status: status, headers: Self.pageHeaders, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func errorPage(_ status: HTTPResponse.Status, _ detail: String) -> DashboardPage {
        DashboardPage(title: "\(status.code) \(status.reasonPhrase)",
                      body: "<h1>\(status.code) \(h(status.reasonPhrase))</h1><p class=\"error\" role=\"alert\">\(h(detail))</p><p><a href=\"/\">Dashboard</a></p>",
                      status: status)
    }

    func toLogin(_ request: Request, clearCookie: Bool = false) -> Response {
        var response = Self.redirect("/login?next=" + urlEncode(request.uri.description))
        if clearCookie { response.headers[.setCookie] = Self.cookie("", maxAge: 0) }
        return response
    }

    static let pageHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
        HTTPField.Name("Content-Security-Policy")!: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff", HTTPField.Name("Referrer-Policy")!: "same-origin",
    ]

    static func asset(_ text: String, _ type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300", HTTPField.Name("X-Content-Type-Options")!: "nosniff"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func cookie(_ value: String, maxAge: Int) -> String {
        "\(DashboardSession.cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict"
    }

    /// A local path (starting with one /), or nil: never an open redirect.
    static func localPath(_ text: String?) -> String? {
        guard let text, text.hasPrefix("/"), !text.hasPrefix("//"), !text.contains("\\"), !text.contains("\r"), !text.contains("\n") else { return nil }
        return text
    }

    /// `path` with one query parameter set (notice or error messages, replacing older ones).
    static func with(_ path: String, _ key: String, _ value: String) -> String {
        let parts = path.split(separator: "?", maxSplits: 1).map(String.init)
        var query = parts.count > 1 ? parts[1].split(separator: "&").map(String.init) : []
        query.removeAll { $0.hasPrefix("notice=") || $0.hasPrefix("error=") }
        query.append("\(key)=\(urlEncode(value))")
        return parts[0] + "?" + query.joined(separator: "&")
    }
}

extension Request {
    /// The notice or error an action left for the page (escaped when rendered).
    var flash: String {
        var out = ""
        if let notice = query("notice") { out += "<p class=\"notice\" role=\"status\">\(h(notice))</p>" }
        if let error = query("error") { out += "<p class=\"error\" role=\"alert\">\(h(error))</p>" }
        return out
    }
}
