// The OpenAPI 3.1 document, built from the operations `APIRoutes` registered: paths and methods
// cannot drift from the router. Schemas stay as loose as the SQL behind them is flexible.
import Foundation
import HTTPTypes

/// Schema shorthands.
enum Schema {
    nonisolated(unsafe) static let string: [String: Any] = ["type": "string"]
    nonisolated(unsafe) static let integer: [String: Any] = ["type": "integer"]
    nonisolated(unsafe) static let number: [String: Any] = ["type": "number"]
    nonisolated(unsafe) static let boolean: [String: Any] = ["type": "boolean"]
    nonisolated(unsafe) static let dateTime: [String: Any] = ["type": "string", "format": "date-time"]
    nonisolated(unsafe) static let uuid: [String: Any] = ["type": "string", "format": "uuid"]
    nonisolated(unsafe) static let object: [String: Any] = ["type": "object"]
    nonisolated(unsafe) static let anyValue: [String: Any] = [:]
    static func array(_ items: [String: Any]) -> [String: Any] { ["type": "array", "items": items] }
    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
    static func nullable(_ type: String) -> [String: Any] { ["type": [type, "null"]] }

    /// An object with typed properties (others allowed), some required.
    static func object(_ properties: [String: [String: Any]], required: [String] = []) -> [String: Any] {
        var o: [String: Any] = ["type": "object", "properties": properties]
        if !required.isEmpty { o["required"] = required }
        return o
    }

    /// `{"items": [...]}`.
    static func items(_ item: [String: Any] = object) -> [String: Any] {
        object(["items": array(item)], required: ["items"])
    }

    /// `{"items": [...], "next_cursor": ...}`.
    static func page(_ item: [String: Any]) -> [String: Any] {
        object(["items": array(item), "next_cursor": nullable("string")], required: ["items", "next_cursor"])
    }

    nonisolated(unsafe) static let flowRun = object(["id": uuid, "name": string, "flow": string, "state_type": string, "state_name": string,
                                 "run_count": integer, "parameters": object, "created_at": string], required: ["id", "state_type", "state_name"])
    nonisolated(unsafe) static let transition = object(["flow_run_id": uuid, "status": string, "state_type": string, "state_name": string, "reason": string],
                                   required: ["flow_run_id", "status", "state_type", "state_name"])
    nonisolated(unsafe) static let problem = object(["type": string, "title": string, "status": integer, "detail": string, "sqlstate": string, "hint": string],
                                required: ["type", "title", "status", "detail"])
}

enum OpenAPIDocument {
    /// The document as JSON text.
    static func render(_ operations: [APIOperation]) -> String {
        var paths: [String: [String: Any]] = [:]
        for op in operations {
            var responses: [String: Any] = [:]
            if let schema = op.response {
                responses[String(op.status)] = ["description": op.summary, "content": [op.contentType: ["schema": schema]]]
            } else {
                responses[String(op.status)] = ["description": op.summary]
            }
            let problem: [String: Any] = ["description": "a problem (RFC 9457)",
                                          "content": ["application/problem+json": ["schema": Schema.ref("Problem")]]]
            if let conflict = op.conflict {
                responses["409"] = ["description": "refused: the body says why (or a problem document)",
                                    "content": ["application/json": ["schema": conflict],
                                                "application/problem+json": ["schema": Schema.ref("Problem")]]]
            }
            var codes = ["400", "404", "405", "409", "413", "422", "503"]
            if op.scope != .none { codes += ["401", "403"] }
            for code in codes where responses[code] == nil { responses[code] = problem }
            var operation: [String: Any] = [
                "summary": op.summary, "operationId": operationID(op), "tags": [op.tag], "responses": responses,
                "parameters": op.parameters.map { p -> [String: Any] in
                    ["name": p.name, "in": p.location, "required": p.required, "schema": p.schema, "description": p.description]
                },
            ]
            operation["security"] = op.scope == .none ? [] : [["bearer": []]]
            if op.scope != .none { operation["x-pgflow-scope"] = op.scope.rawValue }
            if let body = op.body {
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": body]]]
            }
            paths[op.path, default: [:]][op.method.rawValue.lowercased()] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": ["title": "pgflow API", "version": "1",
                     "description": "Workflows orchestrated by PostgreSQL. Every endpoint calls a pgflow SQL function or view; errors are RFC 9457 problem documents. Scopes: read < run < admin."],
            "paths": paths,
            "components": [
                "schemas": ["Problem": Schema.problem],
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer", "description": "a token from `pgflow api token create`"]],
            ],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private static func operationID(_ op: APIOperation) -> String {
        let words = op.path.split(separator: "/").dropFirst().map { part -> String in
            part.hasPrefix("{") ? "By" + part.dropFirst().dropLast().capitalized : part.split(separator: "-").map(\.capitalized).joined()
        }
        return op.method.rawValue.lowercased() + words.joined()
    }
}
