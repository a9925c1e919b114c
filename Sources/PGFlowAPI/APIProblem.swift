// Errors as RFC 9457 problem documents (`application/problem+json`). Bad input never yields a 5xx:
// every PostgreSQL error of a client class maps to a 4xx.
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PGFlowPostgres

/// An HTTP error with a problem document.
public struct APIProblem: Error, HTTPResponseError, CustomStringConvertible {
    /// The HTTP status.
    public let status: HTTPResponse.Status
    /// One line for people.
    public let detail: String
    /// The PostgreSQL SQLSTATE behind it, if any.
    public let sqlState: String?
    /// A hint on what to do, if any.
    public let hint: String?

    /// A problem with a status and a detail.
    public init(_ status: HTTPResponse.Status, _ detail: String, sqlState: String? = nil, hint: String? = nil) {
        self.status = status
        self.detail = detail
        self.sqlState = sqlState
        self.hint = hint
    }

    /// "status: detail".
    public var description: String { "\(status.code) \(detail)" }

    /// The problem document.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: Any] = ["type": "about:blank", "title": status.reasonPhrase, "status": status.code, "detail": detail]
        if let sqlState { body["sqlstate"] = sqlState }
        if let hint { body["hint"] = hint }
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"pgflow\"" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The problem for any error a route threw.
    public static func from(_ error: any Error) -> APIProblem {
        switch error {
        case let problem as APIProblem: return problem
        case let error as PostgresError: return from(error)
        case is NIOTooManyBytesError: return APIProblem(.contentTooLarge, "the request body is too large")
        case let error as HTTPError:
            return APIProblem(error.status, error.body ?? (error.status == .contentTooLarge ? "the request body is too large" : error.status.reasonPhrase))
        default:
            if "\(type(of: error))".contains("Cancellation") { return APIProblem(.serviceUnavailable, "the request was cancelled") }
            return APIProblem(.internalServerError, "internal error: \(error)")
        }
    }

    /// SQLSTATE classes to statuses: invalid input 400/422, constraint 409/422, not found 404, wrong state 409,
    /// a read-only database (a replica) 503.
    public static func from(_ error: PostgresError) -> APIProblem {
        let message = error.message.hasPrefix("pgflow: ") ? String(error.message.dropFirst(8)) : error.message
        switch error.kind {
        case .connection: return APIProblem(.serviceUnavailable, "the database is unreachable: \(message)")
        case .usage: return APIProblem(.badRequest, message)  // e.g. a NUL byte in a text value
        case .decoding: return APIProblem(.internalServerError, message)
        case .server: break
        }
        let state = error.sqlState ?? ""
        if state == "25006" {  // a change sent to an API whose database is a replica (read-only)
            return APIProblem(.serviceUnavailable, message, sqlState: state,
                              hint: "this pgflow-api's --database-url is read-only (a replica): send changes to a pgflow-api on the primary")
        }
        let status: HTTPResponse.Status
        switch state {
        case "22023", "23502", "23514", "23503": status = .unprocessableContent
        case "23505", "55000", "P0003", "55P03": status = .conflict
        case "P0002", "42704": status = .notFound
        case "40001", "40P01", "57014", "53300", "57P01", "57P03": status = .serviceUnavailable
        default:
            if state.hasPrefix("22") || state.hasPrefix("2F") || state.hasPrefix("54") { status = .badRequest }
            else if state.hasPrefix("23") { status = .unprocessableContent }
            else if state.hasPrefix("08") { status = .serviceUnavailable }
            else { status = .internalServerError }
        }
        return APIProblem(status, message, sqlState: error.sqlState, hint: error.hint)
    }
}

/// Turns every error into a problem document and logs server errors.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let problem = APIProblem.from(error)
            if problem.status.code >= 500 {
                context.logger.error("\(request.method) \(request.uri.path): \(problem.detail)")
            }
            return try problem.response(from: request, context: context)
        }
    }
}
