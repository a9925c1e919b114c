import Foundation

/// JSON encoding with sorted keys, so equal values give equal text (and equal cache keys).
enum JSONText {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw FlowRunError.encoding("\(T.self): \(error)")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw FlowRunError.encoding("\(text.prefix(80).debugDescription) as \(T.self): \(error)")
        }
    }

    /// Flow parameters must be a JSON object: a value that does not encode to one is kept under "input".
    static func parameters<T: Encodable>(_ value: T) throws -> String {
        let text = try encode(value)
        return text.hasPrefix("{") ? text : "{\"input\":\(text)}"
    }

    /// The inverse of `parameters`.
    static func decodeParameters<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        if let direct = try? decode(T.self, from: text) { return direct }
        if let wrapped = try? decode(WrappedInput<T>.self, from: text) { return wrapped.input }
        return try decode(T.self, from: text)  // throws the direct error
    }

    /// The top-level values of a JSON object as text (for run name templates).
    static func topLevelStrings(_ json: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        return object.mapValues { value in
            if let s = value as? String { return s }
            if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
                return String(decoding: data, as: UTF8.self)
            }
            return "\(value)"
        }
    }

    /// Fills `{name}` placeholders from a JSON object's top-level values; unknown names stay as written.
    static func render(template: String, parametersJSON: String) -> String {
        let values = topLevelStrings(parametersJSON)
        var out = "", name = "", inName = false
        for ch in template {
            if inName {
                if ch == "}" {
                    out += values[name] ?? "{\(name)}"
                    inName = false
                    name = ""
                } else {
                    name.append(ch)
                }
            } else if ch == "{" {
                inName = true
            } else {
                out.append(ch)
            }
        }
        return inName ? out + "{" + name : out
    }
}

/// Parameters that are not a JSON object, as flow runs store them.
struct WrappedInput<T: Decodable>: Decodable {
    let input: T
}

/// A Codable stand-in for "no value", for flows and tasks that take or return nothing.
public struct Nothing: Codable, Sendable, Equatable {
    /// The only value.
    public init() {}
}
