import Logging
import Synchronization

/// What a `RecordingLogHandler` saw; shared by every copy of the handler.
public final class LogRecord: Sendable {
    public struct Entry: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    public var all: [Entry] { entries.withLock { $0 } }

    public func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    /// Everything logged, messages and metadata values, as one text to search.
    public var text: String { all.map { "\($0.message) \($0.metadata.values.sorted())" }.joined(separator: "\n") }
}

/// A log handler that keeps what was logged, so tests can look at it:
/// `Logger(label: "t") { _ in RecordingLogHandler(record: record) }`.
public struct RecordingLogHandler: LogHandler {
    public let record: LogRecord
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init(record: LogRecord) {
        self.record = record
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged: [String: String] = [:]
        for (key, value) in metadata { merged[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { merged[key] = "\(value)" }
        record.append(LogRecord.Entry(level: event.level, message: "\(event.message)", metadata: merged))
    }
}
