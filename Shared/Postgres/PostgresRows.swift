/// The rows of a query result, copied out of libpq (text format values).
public struct PostgresRows: Sequence, Sendable {
    /// The column names, in result order.
    public let columns: [String]
    let columnIndex: [String: Int]
    let values: [[String?]]
    /// The number of rows affected, for INSERT/UPDATE/DELETE (PQcmdTuples); 0 otherwise.
    public let affectedRows: Int

    init(columns: [String], values: [[String?]], affectedRows: Int) {
        self.columns = columns
        var index: [String: Int] = [:]
        for (position, name) in columns.enumerated() where index[name] == nil {
            index[name] = position
        }
        self.columnIndex = index
        self.values = values
        self.affectedRows = affectedRows
    }

    /// The number of rows.
    public var count: Int { values.count }

    /// The first row, if any.
    public var first: PostgresRow? {
        values.first.map { PostgresRow(columnIndex: columnIndex, values: $0) }
    }

    /// The row at `index` (0-based).
    public subscript(index: Int) -> PostgresRow {
        PostgresRow(columnIndex: columnIndex, values: values[index])
    }

    /// Iterates the rows in order.
    public func makeIterator() -> Iterator {
        Iterator(rows: self)
    }

    /// Iterates the rows in order.
    public struct Iterator: IteratorProtocol, Sendable {
        let rows: PostgresRows
        var position = 0

        /// The next row, or nil at the end.
        public mutating func next() -> PostgresRow? {
            guard position < rows.values.count else { return nil }
            defer { position += 1 }
            return rows[position]
        }
    }
}

/// One result row; values are looked up by column name.
public struct PostgresRow: Sendable {
    let columnIndex: [String: Int]
    let values: [String?]

    /// Decodes a column; throws `.decoding` when it is NULL, missing, or not of the type.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let value = try decodeIfPresent(column, as: type) else {
            throw PostgresError(kind: .decoding, message: "column \"\(column)\" is NULL (expected \(T.self))")
        }
        return value
    }

    /// Decodes a column, nil when it is NULL; throws `.decoding` when it is missing or not of the type.
    public func decodeIfPresent<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard let position = columnIndex[column] else {
            throw PostgresError(
                kind: .decoding,
                message: "no column \"\(column)\" in the result (columns: \(columnIndex.keys.sorted().joined(separator: ", ")))")
        }
        guard let text = values[position] else { return nil }
        do {
            return try T(postgresText: text)
        } catch let error as PostgresError {
            throw PostgresError(kind: .decoding, message: "column \"\(column)\": \(error.message)")
        } catch {
            throw PostgresError(kind: .decoding, message: "column \"\(column)\": cannot decode \(T.self): \(error)")
        }
    }

    /// The raw text value of a column; nil when it is NULL or missing.
    public subscript(column: String) -> String? {
        guard let position = columnIndex[column] else { return nil }
        return values[position]
    }
}
