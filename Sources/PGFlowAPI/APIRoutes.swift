// Route registration: every route is added here with its scope and its OpenAPI description, so the
// served document lists exactly the routes the router has (a test compares the two).
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PGFlowClient
import PGFlowPostgres

/// What a route needs from the caller's token.
public enum APIScope: String, Sendable {
    /// No token (health, the OpenAPI document).
    case none
    /// Reads.
    case read
    /// Reads, and creates, cancels, retries, resumes and deletes runs.
    case run
    /// Everything, including configuration.
    case admin
}

/// A query or path parameter in the OpenAPI document.
struct APIParameter {
    let name: String
    let location: String  // "query" or "path"
    let schema: [String: Any]
    let description: String
    let required: Bool

    static func query(_ name: String, _ schema: [String: Any], _ description: String) -> APIParameter {
        APIParameter(name: name, location: "query", schema: schema, description: description, required: false)
    }
}

/// One documented operation.
struct APIOperation {
    let method: HTTPRequest.Method
    let path: String
    let scope: APIScope
    let summary: String
    let tag: String
    let parameters: [APIParameter]
    let body: [String: Any]?
    let status: Int
    let response: [String: Any]?
    let contentType: String
    /// A 409 whose body is this JSON schema (besides a problem document), e.g. a refused transition.
    let conflict: [String: Any]?
}

/// The router, the pool, and the operations for the OpenAPI document.
final class APIRoutes: @unchecked Sendable {
    let router: Router<APIRequestContext>
    let pool: PostgresPool
    let configuration: APIConfiguration
    let logger: Logger
    private(set) var operations: [APIOperation] = []
    let documentCache = Once<String>()
    /// Dashboard sessions: their cookie also authorizes GET requests here, for the pages' scripts.
    let session: DashboardSession

    init(router: Router<APIRequestContext>, pool: PostgresPool, configuration: APIConfiguration, logger: Logger) {
        self.router = router
        self.pool = pool
        self.configuration = configuration
        self.logger = logger
        self.session = DashboardSession(secret: configuration.sessionSecret)
    }

    /// Adds a route: authorizes the caller for `scope`, then runs `handler`. `path` uses `{name}` captures.
    func add(_ method: HTTPRequest.Method, _ path: String, scope: APIScope, tag: String, summary: String,
             query: [APIParameter] = [], body: [String: Any]? = nil, status: Int = 200, response: [String: Any]?,
             contentType: String = "application/json", conflict: [String: Any]? = nil,
             _ handler: @escaping @Sendable (Request, APIRequestContext) async throws -> Response) {
        let captures = path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
        let parameters = captures.map { APIParameter(name: $0, location: "path", schema: ["type": "string"], description: "", required: true) } + query
        operations.append(APIOperation(method: method, path: path, scope: scope, summary: summary, tag: tag, parameters: parameters,
                                       body: body, status: status, response: response, contentType: contentType,
                                       conflict: conflict))
        let pool = self.pool, noAuth = configuration.insecureNoAuth, maxBody = configuration.maxBodyBytes
        router.on(RouterPath(path), method: method) { request, context in
            var context = context
            context.maxBodyBytes = maxBody
            guard scope != .none && !noAuth else { return try await handler(request, context) }
            let auth = PendingAuth(token: try self.callerToken(request), scope: scope)
            context.auth = auth
            let response: Response
            do {
                response = try await handler(request, context)
            } catch {
                // the token's verdict comes first: a caller without a valid token learns nothing else
                if auth.tokenName == nil { try await pool.withConnection { c in try auth.check(on: c) } }
                throw error
            }
            if auth.tokenName == nil { try await pool.withConnection { c in try auth.check(on: c) } }
            return response
        }
    }

    /// The bearer token of a request, or 401.
    static func bearerToken(_ request: Request) throws -> String {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw APIProblem(.unauthorized, "this needs an API token: send `Authorization: Bearer <token>` (create one with `pgflow api token create`)")
        }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// The bearer token, or for a GET (reads only: a cookie is sent by the browser on its own, so it
    /// never authorizes a change) the token of a dashboard session cookie; else 401.
    func callerToken(_ request: Request) throws -> String {
        if request.headers[.authorization] == nil, request.method == .get, configuration.dashboard,
           let value = DashboardSession.cookie(DashboardSession.cookieName, in: request.headers[.cookie]), let token = session.open(value) {
            return token
        }
        return try Self.bearerToken(request)
    }

    /// Checks the caller's token now (for routes whose work is not a `read` or `change`).
    func authorize(_ context: APIRequestContext) async throws {
        guard let auth = context.auth, auth.tokenName == nil else { return }
        try await pool.withConnection { c in try auth.check(on: c) }
    }

    /// Runs a change and its audit row in one transaction; a failed change is audited after the rollback.
    func change<T: Sendable>(_ context: APIRequestContext, _ action: String, object: String?,
                             detail: @escaping @Sendable (T) -> String? = { _ in nil },
                             _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let auth = context.auth
        do {
            return try await pool.withTransaction { c in
                try auth?.check(on: c)
                let value = try body(c)
                try PGFlowClient.recordAPIAudit(token: auth?.tokenName, action: action, object: object, result: "ok", detailJSON: detail(value), on: c)
                return value
            }
        } catch let error as PostgresError {
            let result = "error \(error.sqlState ?? error.kind.rawValue): \(error.message)"
            _ = try? await pool.withConnection { c in
                try PGFlowClient.recordAPIAudit(token: auth?.tokenName, action: action, object: object, result: result, on: c)
            }
            throw error
        }
    }

    /// Runs a read on a pooled connection, after checking the caller's token on it.
    func read<T: Sendable>(_ context: APIRequestContext, _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let auth = context.auth
        return try await pool.withConnection { c in
            try auth?.check(on: c)
            return try body(c)
        }
    }
}

// MARK: Responses and inputs

/// A JSON response from JSON text.
func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
}

/// `{"items": [...], "next_cursor": ...}`.
func pageJSON(_ page: JSONPage) -> Response {
    json("{\"items\":\(page.items),\"next_cursor\":\(page.nextCursor.map(jsonString) ?? "null")}")
}

/// `{"items": [...]}`.
func itemsJSON(_ items: String) -> Response { json("{\"items\":\(items)}") }

/// A JSON string literal.
func jsonString(_ s: String) -> String {
    String(decoding: (try? JSONSerialization.data(withJSONObject: [s])) ?? Data("[\"\"]".utf8), as: UTF8.self).dropFirst().dropLast().description
}

/// 204.
func noContent() -> Response { Response(status: .noContent) }

/// A transition's outcome as JSON.
func transitionJSON(_ t: TransitionResult) -> Response {
    var object: [String: Any] = ["flow_run_id": t.runID.uuidString.lowercased(), "status": t.status.rawValue, "state_type": t.stateType.rawValue, "state_name": t.stateName]
    if let reason = t.reason { object["reason"] = reason }
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return json(String(decoding: data, as: UTF8.self), status: t.status == .rejected ? .conflict : .ok)
}

extension Request {
    /// A query parameter as text.
    func query(_ name: String) -> String? { uri.queryParameters[Substring(name)].map(String.init) }

    /// An integer query parameter (400 when not an integer), or `default`.
    func intQuery(_ name: String, default value: Int) throws -> Int {
        guard let text = query(name) else { return value }
        guard let n = Int(text) else { throw APIProblem(.badRequest, "query parameter \(name) must be an integer, got \"\(text.prefix(40))\"") }
        return n
    }

    /// A boolean query parameter (400 when not true/false).
    func boolQuery(_ name: String) throws -> Bool? {
        guard let text = query(name) else { return nil }
        switch text.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw APIProblem(.badRequest, "query parameter \(name) must be true or false, got \"\(text.prefix(40))\"")
        }
    }

    /// A date-time query parameter (RFC 3339; 400 otherwise).
    func dateQuery(_ name: String) throws -> Date? {
        guard let text = query(name) else { return nil }
        guard let date = parseDate(text) else { throw APIProblem(.badRequest, "query parameter \(name) must be an RFC 3339 date-time, got \"\(text.prefix(40))\"") }
        return date
    }

    /// A UUID query parameter (400 otherwise).
    func uuidQuery(_ name: String) throws -> UUID? {
        guard let text = query(name) else { return nil }
        guard let id = UUID(uuidString: text) else { throw APIProblem(.badRequest, "query parameter \(name) must be a UUID") }
        return id
    }
}

extension APIRequestContext {
    /// A path capture (always present on a matched route), percent-decoded: the router hands captures
    /// over as sent, so `/api/deployments/etl/nightly%20run` names the deployment "nightly run". Text that
    /// is not valid percent-encoding is taken as it is.
    func path(_ name: String) -> String {
        guard let raw = parameters.get(name) else { return "" }
        return raw.removingPercentEncoding ?? raw
    }

    /// A path capture that must be a UUID (404 otherwise: no such object).
    func pathUUID(_ name: String) throws -> UUID {
        guard let id = UUID(uuidString: path(name)) else { throw APIProblem(.notFound, "\(name) must be a UUID; no object has id \"\(path(name).prefix(40))\"") }
        return id
    }
}

/// RFC 3339 with or without fractional seconds.
func parseDate(_ text: String) -> Date? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let d = f.date(from: text) { return d }
    f.formatOptions = [.withInternetDateTime]
    return f.date(from: text)
}
