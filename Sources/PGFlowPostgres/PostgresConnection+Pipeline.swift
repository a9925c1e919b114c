import CLibPQ

/// One statement of a pipeline: SQL and its bound parameters.
public struct PostgresStatement: Sendable {
    /// The SQL text, with `$1`… placeholders.
    public var sql: String
    /// The values bound to the placeholders.
    public var parameters: [(any PostgresEncodable)?]

    /// Creates a statement.
    public init(_ sql: String, _ parameters: [(any PostgresEncodable)?] = []) {
        self.sql = sql
        self.parameters = parameters
    }
}

extension PostgresConnection {
    /// Sends every statement in one round trip (libpq pipeline mode) and returns their results in order.
    ///
    /// The statements run as one implicit transaction: if one fails, the later ones are skipped, nothing
    /// is committed, and the first error is thrown. Statements are prepared (once per connection) first,
    /// unless the configuration turns prepared statements off.
    public func pipeline(_ statements: [PostgresStatement]) throws -> [PostgresResult] {
        if statements.isEmpty { return [] }
        let prepared = configuration.preparedStatements
        var names: [String] = []
        names.reserveCapacity(statements.count)
        if prepared { for s in statements { names.append(try ensurePrepared(s.sql)) } }

        guard PQenterPipelineMode(handle) == 1 else { throw connectionError("could not enter pipeline mode") }
        PQsetnonblocking(handle, 1)
        defer {
            PQsetnonblocking(handle, 0)
            if PQpipelineStatus(handle) != PQ_PIPELINE_OFF { PQexitPipelineMode(handle) }
        }
        for (n, statement) in statements.enumerated() {
            let texts = try Self.texts(statement.parameters)
            let sent = Self.withCStrings(texts) { values in
                prepared ? PQsendQueryPrepared(handle, names[n], Int32(values.count), values, nil, nil, 0)
                    : PQsendQueryParams(handle, statement.sql, Int32(values.count), nil, values, nil, nil, 0)
            }
            guard sent == 1 else { throw connectionError("could not send pipeline statement \(n + 1)") }
            if n % 64 == 63 { try flushAndRead(waitUntilFlushed: false) }
        }
        guard PQpipelineSync(handle) == 1 else { throw connectionError("could not send the pipeline sync") }
        try flushAndRead(waitUntilFlushed: true)

        var results: [PostgresResult] = []
        results.reserveCapacity(statements.count)
        var firstError: PostgresError?
        for _ in statements {
            guard let raw = PQgetResult(handle) else { throw connectionError("the pipeline ended early") }
            do { results.append(try consume(raw)) } catch let e as PostgresError { firstError = firstError ?? e }
            while let extra = PQgetResult(handle) { PQclear(extra) }  // the NULL that ends each statement
        }
        guard let sync = PQgetResult(handle), PQresultStatus(sync) == PGRES_PIPELINE_SYNC else {
            throw connectionError("the pipeline did not end with its sync")
        }
        PQclear(sync)
        if let firstError { throw firstError }
        return results
    }

    /// Pushes buffered output to the server, reading its replies meanwhile so neither side can stall
    /// on a full socket buffer.
    private func flushAndRead(waitUntilFlushed: Bool) throws {
        while true {
            let pending = PQflush(handle)
            if pending == 0 { return }
            if pending < 0 { throw connectionError("could not send the pipeline") }
            var fd = pollfd(fd: socket, events: Int16(POLLIN | POLLOUT), revents: 0)
            let ready = poll(&fd, 1, waitUntilFlushed ? 10_000 : 0)
            if ready < 0 { throw connectionError("poll failed while sending the pipeline") }
            if ready == 0 && !waitUntilFlushed { return }
            if fd.revents & Int16(POLLIN) != 0, PQconsumeInput(handle) == 0 {
                throw connectionError("the connection broke while sending the pipeline")
            }
        }
    }
}
