import Foundation

/// A Swift value that can be sent to PostgreSQL as a bound parameter (text format).
public protocol PostgresEncodable: Sendable {
    /// The parameter's text form, or nil for SQL NULL.
    var postgresText: String? { get }
}

/// A Swift type that can be read from a result column (text format).
public protocol PostgresDecodable {
    /// Decodes a non-NULL column value.
    init(postgresText text: String) throws
    /// The value for SQL NULL, or nil when NULL is not allowed for this type.
    static var postgresNull: Self? { get }
}

extension PostgresDecodable {
    /// NULL is not allowed by default: decode into an `Optional` to accept it.
    public static var postgresNull: Self? { nil }
}

func decodingError(_ text: String, _ type: Any.Type) -> PostgresError {
    PostgresError(kind: .decoding, message: "cannot decode \(text.prefix(60).debugDescription) as \(type)")
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    /// The wrapped value's text, or NULL.
    public var postgresText: String? { self?.postgresText }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    /// Decodes the wrapped value.
    public init(postgresText text: String) throws { self = try Wrapped(postgresText: text) }
    /// NULL decodes as `nil`.
    public static var postgresNull: Self? { .some(.none) }
}

extension String: PostgresEncodable, PostgresDecodable {
    /// The string itself.
    public var postgresText: String? { self }
    /// The column text.
    public init(postgresText text: String) { self = text }
}

extension Int: PostgresEncodable, PostgresDecodable {
    /// Decimal digits.
    public var postgresText: String? { String(self) }
    /// Parses an integer column.
    public init(postgresText text: String) throws {
        guard let v = Int(text) else { throw decodingError(text, Int.self) }
        self = v
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    /// Decimal digits.
    public var postgresText: String? { String(self) }
    /// Parses an integer column.
    public init(postgresText text: String) throws {
        guard let v = Int32(text) else { throw decodingError(text, Int32.self) }
        self = v
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    /// Decimal digits.
    public var postgresText: String? { String(self) }
    /// Parses an integer column.
    public init(postgresText text: String) throws {
        guard let v = Int64(text) else { throw decodingError(text, Int64.self) }
        self = v
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    /// `true` or `false`.
    public var postgresText: String? { self ? "true" : "false" }
    /// Parses `t`/`f` (and the long forms).
    public init(postgresText text: String) throws {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw decodingError(text, Bool.self)
        }
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    /// Shortest round-tripping decimal form, or `NaN`/`Infinity`/`-Infinity`.
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self < 0 ? "-Infinity" : "Infinity" }
        return "\(self)"
    }
    /// Parses a float column.
    public init(postgresText text: String) throws {
        switch text {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default:
            guard let v = Double(text) else { throw decodingError(text, Double.self) }
            self = v
        }
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    /// Lower-case canonical form (written byte by byte: `uuidString` formats with snprintf).
    public var postgresText: String? {
        let hex: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { out in
                hex.withUTF8Buffer { digits in
                    var o = 0
                    for (i, b) in bytes.enumerated() {
                        if i == 4 || i == 6 || i == 8 || i == 10 { out[o] = 45; o += 1 }
                        out[o] = digits[Int(b >> 4)]
                        out[o + 1] = digits[Int(b & 15)]
                        o += 2
                    }
                }
                return 36
            }
        }
    }

    /// Parses a uuid column (PostgreSQL's canonical form fast, anything else through Foundation).
    public init(postgresText text: String) throws {
        if let v = Self.parseCanonical(text) {
            self = v
        } else {
            guard let v = UUID(uuidString: text) else { throw decodingError(text, UUID.self) }
            self = v
        }
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in either case, without sscanf.
    private static func parseCanonical(_ text: String) -> UUID? {
        var text = text
        return text.withUTF8 { s -> UUID? in
            guard s.count == 36, s[8] == 45, s[13] == 45, s[18] == 45, s[23] == 45 else { return nil }
            func nibble(_ c: UInt8) -> UInt8? {
                switch c {
                case 48...57: return c - 48
                case 97...102: return c - 87
                case 65...70: return c - 55
                default: return nil
                }
            }
            var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            let ok = withUnsafeMutableBytes(of: &raw) { out -> Bool in
                var i = 0
                for n in 0..<16 {
                    if i == 8 || i == 13 || i == 18 || i == 23 { i += 1 }
                    guard let hi = nibble(s[i]), let lo = nibble(s[i + 1]) else { return false }
                    out[n] = hi << 4 | lo
                    i += 2
                }
                return true
            }
            return ok ? UUID(uuid: raw) : nil
        }
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// ISO 8601 in UTC with microseconds (`2026-11-21 06:37:13.123456+00`).
    public var postgresText: String? { PostgresTimestamp.format(self) }
    /// Parses a `timestamptz` column in any offset.
    public init(postgresText text: String) throws {
        guard let v = PostgresTimestamp.parse(text) else { throw decodingError(text, Date.self) }
        self = v
    }
}

extension Array: PostgresEncodable where Element == String {
    /// A `text[]` literal with every element quoted.
    public var postgresText: String? { PostgresArray.format(self) }
}

extension Array: PostgresDecodable where Element == String {
    /// Parses a one-dimensional `text[]` column (NULL elements are not allowed).
    public init(postgresText text: String) throws {
        guard let v = PostgresArray.parse(text) else { throw decodingError(text, [String].self) }
        self = v
    }
}

/// A one-dimensional `text[]` whose elements may be NULL (cast it in SQL for other element types:
/// `$1::uuid[]`, `$1::int[]`).
public struct PostgresTextArray: PostgresEncodable, Sendable, Equatable {
    /// The elements; nil is NULL.
    public var elements: [String?]
    /// Wraps elements.
    public init(_ elements: [String?]) { self.elements = elements }
    /// The array literal.
    public var postgresText: String? { PostgresArray.format(elements) }
}

/// A `json`/`jsonb` value holding any `Codable` Swift value.
public struct PostgresJSON<Value: Codable & Sendable>: PostgresEncodable, PostgresDecodable, Sendable {
    /// The value.
    public var value: Value
    /// Wraps a value.
    public init(_ value: Value) { self.value = value }

    /// The JSON text (keys sorted, so equal values give equal text).
    public var postgresText: String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        guard let data = try? encoder.encode(value) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// Decodes the JSON text.
    public init(postgresText text: String) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            value = try decoder.decode(Value.self, from: Data(text.utf8))
        } catch {
            throw PostgresError(kind: .decoding, message: "cannot decode JSON \(text.prefix(60).debugDescription) as \(Value.self): \(error)")
        }
    }
}

/// Raw JSON text sent as-is (already valid JSON), for callers that hold JSON text rather than a value.
public struct PostgresRawJSON: PostgresEncodable, PostgresDecodable, Sendable, Equatable {
    /// The JSON text.
    public var text: String
    /// Wraps JSON text.
    public init(_ text: String) { self.text = text }
    /// The JSON text.
    public var postgresText: String? { text }
    /// The column text.
    public init(postgresText text: String) { self.text = text }
}
