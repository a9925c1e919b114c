/// The result of one statement: column names, rows (copied out of libpq), and the affected row count.
public struct PostgresResult: Sendable {
    /// Column names, in order.
    public let columns: PostgresColumns
    /// The rows.
    public let rows: [PostgresRow]
    /// Rows inserted/updated/deleted/selected, as the command tag reports (0 when it reports none).
    public let affectedRows: Int

    /// The first row, if any.
    public var first: PostgresRow? { rows.first }

    /// Decodes column 0 of the only row: for `SELECT count(*) …` and friends.
    public func scalar<T: PostgresDecodable>(_ type: T.Type = T.self) throws -> T {
        guard let row = rows.first else {
            throw PostgresError(kind: .decoding, message: "expected one row, got none")
        }
        return try row.decode(type, at: 0)
    }
}

/// Column names of a result, shared by its rows.
public final class PostgresColumns: Sendable {
    /// Names in column order.
    public let names: [String]
    private let index: [String: Int]

    init(names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (n, name) in names.enumerated() where index[name] == nil { index[name] = n }
        self.index = index
    }

    /// The position of a column, or nil.
    public func position(of name: String) -> Int? { index[name] }

    /// The position of a column that must be there (a decoding error names the columns there are).
    public func require(_ name: String) throws -> Int {
        guard let position = index[name] else {
            throw PostgresError(kind: .decoding, message: "no column named \(name); columns are \(names.joined(separator: ", "))")
        }
        return position
    }
}

/// One row: each column's text (nil for NULL), decodable into Swift types.
public struct PostgresRow: Sendable {
    /// Column names.
    public let columns: PostgresColumns
    /// Column texts in order; nil is SQL NULL.
    public let values: [String?]

    /// Decodes column `position`.
    @inlinable  // specialized in the caller's module: a generic call per column was a visible share of a draining agent's CPU
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at position: Int) throws -> T {
        guard values.indices.contains(position) else {
            throw PostgresError(kind: .decoding, message: "no column \(position); the row has \(values.count)")
        }
        guard let text = values[position] else {
            guard let null = T.postgresNull else {
                throw PostgresError(kind: .decoding, message: "column \(columns.names[position]) is NULL; decode it as \(T.self)? to allow NULL")
            }
            return null
        }
        return try T(postgresText: text)
    }

    /// Decodes the column named `name`.
    @inlinable
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, _ name: String) throws -> T {
        try decode(type, at: columns.require(name))
    }

    /// The raw text of column `position` (nil for NULL).
    public subscript(position: Int) -> String? { values[position] }

    /// The raw text of the column named `name` (nil for NULL or a missing column).
    public subscript(name: String) -> String? { columns.position(of: name).flatMap { values[$0] } }
}
