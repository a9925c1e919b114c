// The served OpenAPI document matches the router, and errors map to the right statuses (no database needed).
import Foundation
import Logging
import PGFlowAPI
import PGFlowPostgres
import Testing

@Suite struct OpenAPIDocumentTests {
    @Test func everyRouteIsDocumentedAndEveryDocumentedOperationIsARoute() throws {
        var configuration = APIConfiguration()
        configuration.databaseURL = "postgresql:///nowhere"  // the pool connects lazily; nothing connects here
        let server = try APIServer(configuration: configuration, logger: Logger(label: "test"))
        let document = try #require(try JSONSerialization.jsonObject(with: Data(server.openAPIDocument.utf8)) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let documented = paths.flatMap { path, methods in methods.keys.map { "\($0.uppercased()) \(path)" } }.sorted()
        #expect(documented == server.routes)
        #expect(server.routes.count > 40)
        for (path, methods) in paths {
            for (method, op) in methods {
                let op = try #require(op as? [String: Any])
                let captures = path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
                let parameters = (op["parameters"] as? [[String: Any]] ?? []).filter { $0["in"] as? String == "path" }.compactMap { $0["name"] as? String }
                #expect(parameters == captures, "\(method) \(path)")
                #expect((op["responses"] as? [String: Any])?["400"] != nil, "\(method) \(path) documents its problems")
            }
        }
    }

    @Test func sqlStatesMapToClientErrors() {
        func status(_ state: String) -> Int { APIProblem.from(PostgresError(kind: .server, sqlState: state, message: "x")).status.code }
        #expect(status("22023") == 422)
        #expect(status("22P02") == 400)
        #expect(status("22007") == 400)
        #expect(status("23505") == 409)
        #expect(status("23514") == 422)
        #expect(status("P0002") == 404)
        #expect(status("P0003") == 409)
        #expect(status("55000") == 409)
        #expect(status("54000") == 400)
        #expect(status("XX000") == 500)
        #expect(APIProblem.from(PostgresError(kind: .usage, message: "NUL byte")).status.code == 400)
        #expect(APIProblem.from(PostgresError(kind: .connection, message: "down")).status.code == 503)
    }

    @Test func insecureNoAuthOnlyOnLoopback() {
        var c = APIConfiguration()
        c.insecureNoAuth = true
        c.host = "0.0.0.0"
        #expect(throws: APIConfigurationError.self) { try c.validate() }
        c.host = "127.0.0.1"
        #expect(throws: Never.self) { try c.validate() }
    }
}
