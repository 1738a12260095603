import ArgumentParser
import Foundation
import Logging
import Synchronization

/// Log settings (`--log-level`, `--log-format`; env `RAMPART_LOG_LEVEL`, `RAMPART_LOG_FORMAT`).
public struct LogOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    public var level: String = Environment.value("RAMPART_LOG_LEVEL") ?? "info"

    @Option(name: .customLong("log-format"), help: "text or json (one object per line).")
    public var format: String = Environment.value("RAMPART_LOG_FORMAT") ?? "text"

    public init() {}

    public func validate() throws {
        guard Logger.Level(rawValue: level) != nil else { throw ValidationError("unknown --log-level '\(level)'") }
        guard ["text", "json"].contains(format) else { throw ValidationError("--log-format must be text or json") }
    }

    /// Installs the chosen handler for the whole process (once) and returns a logger labelled `label`.
    public func bootstrap(_ label: String) -> Logger {
        let level = Logger.Level(rawValue: level) ?? .info
        let json = format == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

/// Writes each record as one JSON object on standard error: time, level, label, message, metadata.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private static let lock = Mutex(())

    /// A handler for loggers labelled `label`.
    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = "\(value)"
        }
        var record: [String: String] = fields
        record["time"] = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        record["level"] = event.level.rawValue
        record["label"] = label
        record["message"] = "\(event.message)"
        record["source"] = event.source
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(record) else { return }
        line.append(0x0A)
        Self.lock.withLock { _ in FileHandle.standardError.write(line) }
    }
}
