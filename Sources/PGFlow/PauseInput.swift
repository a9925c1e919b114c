// Pause with typed input: the flow declares the JSON schema of what it waits for, pauses, and gets the
// value it was resumed with (`pgflow flow-run resume ID --input '{"approved": true}'`, or
// `SELECT pgflow.resume_flow_run_with_input(id, '{…}')`). PostgreSQL checks the input against the
// schema: a bad input is refused (22023) and the run stays paused.
//
//   struct Approval: PauseInput { var approved: Bool; var note: String? }
//   let approval = try await pause(waitingFor: Approval.self, timeout: .seconds(3600))
import Foundation
import PGFlowClient

/// A value a paused flow waits for. Its JSON schema is derived from its `Decodable` conformance (object
/// fields with string, number, integer, boolean, nested object and array types; optional fields are not
/// required); types whose decoding the derivation cannot follow (enums with raw values, custom
/// `init(from:)`) give `inputSchema` themselves.
public protocol PauseInput: Codable, Sendable {
    /// The JSON schema (pgflow's subset: type, required, properties, items, enum) as JSON text.
    static var inputSchema: String { get }
}

extension PauseInput {
    /// The schema derived from the type's `Decodable` conformance (`{"type": "object"}` when it cannot be).
    public static var inputSchema: String { JSONSchemaDerivation.schemaText(of: Self.self) }
}

/// Pauses the current flow run until it is resumed with input that fits `T`'s schema, and returns it.
/// Throws `FlowRunError.pauseTimedOut` after `timeout`, `.rejected` when resumed without input.
public func pause<T: PauseInput>(waitingFor type: T.Type, timeout: Duration = .seconds(3600), message: String? = nil) async throws -> T {
    guard let scope = FlowRunScope.current else {
        throw FlowRunError.unsupported("pause(waitingFor:) works only inside a flow run")
    }
    let id = scope.flowRunID
    let schema = T.inputSchema
    try await scope.engine.pool.withConnection { try PGFlowClient.requestFlowRunInput(id, schemaJSON: schema, on: $0) }
    try await pause(timeout: timeout, message: message ?? "waiting for input (\(T.self))")
    guard let json = try await scope.engine.pool.withConnection({ try PGFlowClient.flowRunInput(id, on: $0) }) else {
        throw FlowRunError.rejected("flow run \(id.uuidString.lowercased()) was resumed without input; it waits for \(T.self): resume it with --input")
    }
    return try JSONText.decode(T.self, from: json)
}

/// Derives a JSON schema by decoding a type from a decoder that records what it is asked for.
enum JSONSchemaDerivation {
    static func schemaText<T: Decodable>(of type: T.Type) -> String {
        let schema = (try? schema(of: type)) ?? ["type": "object"]
        let data = (try? JSONSerialization.data(withJSONObject: schema, options: [.sortedKeys])) ?? Data("{\"type\":\"object\"}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func schema<T: Decodable>(of type: T.Type) throws -> [String: Any] {
        if let leaf = leafSchema(type) { return leaf }
        let recorder = SchemaRecorder()
        _ = try T(from: recorder)
        return recorder.schema
    }

    /// Types whose JSON form is a string or number whatever their Decodable conformance does.
    static func leafSchema(_ type: Any.Type) -> [String: Any]? {
        switch type {
        case is String.Type, is Date.Type, is URL.Type, is UUID.Type: return ["type": "string"]
        case is Bool.Type: return ["type": "boolean"]
        case is Int.Type, is Int8.Type, is Int16.Type, is Int32.Type, is Int64.Type,
             is UInt.Type, is UInt8.Type, is UInt16.Type, is UInt32.Type, is UInt64.Type: return ["type": "integer"]
        case is Double.Type, is Float.Type: return ["type": "number"]
        default: return nil
        }
    }
}

/// A decoder that answers every request with a placeholder and remembers the shape asked for.
private final class SchemaRecorder: Decoder {
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] = [:]
    var schema: [String: Any] = [:]
    var properties: [String: Any] = [:]
    var required: [String] = []

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        schema = ["type": "object"]
        return KeyedDecodingContainer(Keyed<Key>(recorder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        schema = ["type": "array"]
        return Unkeyed(recorder: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(recorder: self) }

    func finishObject() {
        schema["properties"] = properties
        if !required.isEmpty { schema["required"] = required.sorted() }
    }

    /// A placeholder value of `T`, recording its schema.
    static func placeholder<T: Decodable>(_ type: T.Type) throws -> (T, [String: Any]) {
        if let leaf = JSONSchemaDerivation.leafSchema(type) {
            let value: Any? = switch leaf["type"] as? String {
            case "string": type == Date.self ? Date(timeIntervalSince1970: 0) : type == URL.self ? URL(string: "x:") : type == UUID.self ? UUID() : ""
            case "boolean": false
            default: (type as? any ExpressibleByIntegerLiteral.Type).map { _ in try? JSONDecoder().decode(T.self, from: Data("0".utf8)) } ?? nil
            }
            if let value = value as? T { return (value, leaf) }
        }
        let recorder = SchemaRecorder()
        let value = try T(from: recorder)
        return (value, recorder.schema)
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let recorder: SchemaRecorder
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { [] }
        func contains(_ key: Key) -> Bool { true }
        func decodeNil(forKey key: Key) throws -> Bool { false }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            let (value, schema) = try SchemaRecorder.placeholder(type)
            recorder.properties[key.stringValue] = schema
            recorder.required.append(key.stringValue)
            recorder.finishObject()
            return value
        }
        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try optional(type, key) }
        // the standard library's defaults for these would call decode(_:forKey:) and mark the field required
        func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try optional(type, key) }
        func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try optional(type, key) }
        func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try optional(type, key) }
        func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try optional(type, key) }
        func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try optional(type, key) }
        func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try optional(type, key) }
        func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try optional(type, key) }
        func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try optional(type, key) }
        func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try optional(type, key) }
        func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try optional(type, key) }
        func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try optional(type, key) }
        func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try optional(type, key) }
        func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try optional(type, key) }
        func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try optional(type, key) }
        private func optional<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
            let (value, schema) = try SchemaRecorder.placeholder(type)
            recorder.properties[key.stringValue] = schema
            recorder.finishObject()
            return value
        }
        func nestedContainer<N: CodingKey>(keyedBy type: N.Type, forKey key: Key) throws -> KeyedDecodingContainer<N> {
            throw DecodingError.typeMismatch(type, .init(codingPath: [key], debugDescription: "schema derivation does not follow nested containers"))
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: [key], debugDescription: "schema derivation does not follow nested containers"))
        }
        func superDecoder() throws -> any Decoder { recorder }
        func superDecoder(forKey key: Key) throws -> any Decoder { recorder }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let recorder: SchemaRecorder
        var codingPath: [any CodingKey] { [] }
        var count: Int? { 1 }
        var currentIndex = 0
        var isAtEnd: Bool { currentIndex > 0 }
        mutating func decodeNil() throws -> Bool { false }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let (value, schema) = try SchemaRecorder.placeholder(type)
            recorder.schema["items"] = schema
            currentIndex += 1
            return value
        }
        mutating func nestedContainer<N: CodingKey>(keyedBy type: N.Type) throws -> KeyedDecodingContainer<N> {
            throw DecodingError.typeMismatch(type, .init(codingPath: [], debugDescription: "schema derivation does not follow nested containers"))
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: [], debugDescription: "schema derivation does not follow nested containers"))
        }
        mutating func superDecoder() throws -> any Decoder { recorder }
    }

    struct Single: SingleValueDecodingContainer {
        let recorder: SchemaRecorder
        var codingPath: [any CodingKey] { [] }
        func decodeNil() -> Bool { false }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let (value, schema) = try SchemaRecorder.placeholder(type)
            recorder.schema = schema
            return value
        }
    }
}
