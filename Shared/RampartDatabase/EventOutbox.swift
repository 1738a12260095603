import Foundation
import Logging
import Postgres
import RampartBus
import RampartProto
import SwiftProtobuf

/// An event a service records together with the state change it describes (transactional outbox,
/// rule P2). The bus moves it into the journal, gives it its global sequence number and publishes it.
public struct OutboxEvent: Sendable {
    public var topic: String
    public var subject: String
    public var attributes: [String: String]
    public var dataType: String
    public var data: Data

    /// An event on `topic` about `subject`, with small facts and, optionally, the full message.
    public init(topic: String, subject: String, attributes: [String: String] = [:], message: (any SwiftProtobuf.Message)? = nil) {
        self.topic = topic
        self.subject = subject
        self.attributes = attributes
        self.dataType = message.map { type(of: $0).protoMessageName } ?? ""
        self.data = message.map { FrameCodec.serialize($0) } ?? Data()
    }
}

/// The `events` schema: the outbox services write to and the journal the bus keeps.
/// Every process that writes or reads events migrates it at start (idempotent, under a lock).
public enum EventOutbox {
    /// Versioned migrations of schema `events`.
    public static let migrations: [Migration] = [
        Migration(
            version: 1, name: "outbox and journal",
            sql: """
                CREATE SCHEMA IF NOT EXISTS events;
                CREATE TABLE events.outbox (
                    id bigserial PRIMARY KEY,
                    topic text NOT NULL,
                    source text NOT NULL,
                    subject text NOT NULL DEFAULT '',
                    attributes jsonb NOT NULL DEFAULT '{}',
                    data_type text NOT NULL DEFAULT '',
                    data bytea NOT NULL DEFAULT '\\x',
                    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
                );
                CREATE TABLE events.journal (
                    seq bigint PRIMARY KEY CHECK (seq > 0),
                    topic text NOT NULL,
                    source text NOT NULL,
                    subject text NOT NULL,
                    attributes jsonb NOT NULL,
                    data_type text NOT NULL,
                    data bytea NOT NULL,
                    time timestamptz NOT NULL
                );
                CREATE INDEX journal_topic_seq ON events.journal (topic text_pattern_ops, seq);
                """),
    ]

    /// Creates or updates the `events` schema.
    public static func migrate(connection: PostgresConnection, logger: Logger) throws {
        try Migrator.migrate(schema: "events", migrations: migrations, connection: connection, logger: logger)
    }

    /// Records `event` from `source` on `connection`; call inside the transaction of the state change.
    public static func append(_ event: OutboxEvent, source: String, on connection: PostgresConnection) throws {
        try connection.execute(appending(event, source: source))
    }

    /// The statement that records `event` from `source`, for a pipeline of the state change's statements.
    public static func appending(_ event: OutboxEvent, source: String) throws -> SQL {
        let attributes = try String(decoding: JSONEncoder.sorted.encode(event.attributes), as: UTF8.self)
        return """
            INSERT INTO events.outbox (topic, source, subject, attributes, data_type, data)
            VALUES (\(event.topic), \(source), \(event.subject), \(attributes)::jsonb, \(event.dataType), \(event.data))
            """
    }
}

extension JSONEncoder {
    /// An encoder with sorted keys, so equal values encode to equal bytes.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
