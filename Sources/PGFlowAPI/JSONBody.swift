// A request's JSON object body, with typed field access: malformed JSON is 400, a wrong type 422.
import Foundation
import Hummingbird

/// A request body that must be a JSON object.
struct JSONBody: @unchecked Sendable {
    let fields: [String: Any]

    /// Reads and parses the body (413 past the limit, 400 when it is not a JSON object; empty is `{}`).
    static func read(_ request: Request, _ context: APIRequestContext) async throws -> JSONBody {
        let buffer = try await request.body.collect(upTo: context.maxBodyBytes)
        if buffer.readableBytes == 0 { return JSONBody(fields: [:]) }
        let data = Data(buffer.readableBytesView)
        guard let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            throw APIProblem(.badRequest, "the request body is not valid JSON")
        }
        guard let object = value as? [String: Any] else { throw APIProblem(.badRequest, "the request body must be a JSON object") }
        return JSONBody(fields: object)
    }

    private func wrongType(_ key: String, _ expected: String) -> APIProblem {
        APIProblem(.unprocessableContent, "field \(key) must be \(expected)")
    }

    private func value(_ key: String) -> Any? {
        guard let v = fields[key], !(v is NSNull) else { return nil }
        return v
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw wrongType(key, "a string") }
        return s
    }

    func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw APIProblem(.unprocessableContent, "field \(key) is required") }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v as? Bool, Self.looksBoolean(v) else { throw wrongType(key, "true or false") }
        return b
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard !Self.looksBoolean(v), let n = v as? NSNumber, let i = Int(exactly: n.doubleValue), Double(i) == n.doubleValue, abs(i) < 1 << 31 else {
            throw wrongType(key, "an integer")
        }
        return i
    }

    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard !Self.looksBoolean(v), let n = v as? NSNumber, n.doubleValue.isFinite else { throw wrongType(key, "a number") }
        return n.doubleValue
    }

    func strings(_ key: String) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard let a = v as? [Any], let s = a as? [String], s.count == a.count else { throw wrongType(key, "an array of strings") }
        return s
    }

    func doubles(_ key: String) throws -> [Double]? {
        guard let v = value(key) else { return nil }
        guard let a = v as? [Any] else { throw wrongType(key, "an array of numbers") }
        return try a.map { e in
            guard !Self.looksBoolean(e), let n = e as? NSNumber, n.doubleValue.isFinite else { throw wrongType(key, "an array of numbers") }
            return n.doubleValue
        }
    }

    func date(_ key: String) throws -> Date? {
        guard let s = try string(key) else { return nil }
        guard let d = parseDate(s) else { throw wrongType(key, "an RFC 3339 date-time") }
        return d
    }

    /// A JSON object field as JSON text (nil when absent).
    func object(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard v is [String: Any] else { throw wrongType(key, "a JSON object") }
        return try Self.text(v)
    }

    /// Any JSON value as JSON text (nil when absent; JSON null counts as absent).
    func anyValue(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        return try Self.text(v)
    }

    static func text(_ v: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed]), as: UTF8.self)
    }

    /// JSON booleans arrive as Bool; numbers as NSNumber (which `as? Bool` would also accept for 0 and 1).
    static func looksBoolean(_ v: Any) -> Bool { type(of: v) == Bool.self || String(describing: type(of: v)).contains("Bool") }
}
