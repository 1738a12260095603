import ArgumentParser
import Foundation
import Logging
import RampartBus
import RampartCore
import RampartRPC

/// `rampart`: the operator's command line, a client of every service on the bus.
@main
struct RampartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rampart",
        abstract: "Back up and restore the configuration of a fleet of firewall devices.",
        discussion: """
            Every command talks to the services through the bus (--bus or RAMPART_BUS).
            Exit codes: 0 ok, 1 other failure, 3 not found, 4 refused (exists / precondition / not allowed), \
            5 bus or service unavailable or too slow, 6 invalid argument, 7/8/9 a waited-for job partially \
            succeeded / failed / was cancelled, 10 damaged storage, 11 data loss, 12 a device's backup is stale \
            (backups status), 64 bad usage.
            """,
        subcommands: [
            DevicesCommand.self, HaPairsCommand.self, ClustersCommand.self, BackupCommand.self, JobsCommand.self,
            BackupsCommand.self, RetentionCommand.self, SchedulesCommand.self, LinksCommand.self, RestoreCommand.self, DeployCommand.self, HaCommand.self, StorageCommand.self, EventsCommand.self, BusStatusCommand.self, KeysCommand.self,
            AuditCommand.self, NotifyCommand.self, DrillCommand.self, DrillsCommand.self,
        ])

    /// Runs the command line; a first word that is no command (a typo: `devcies list`) is a usage error
    /// naming the closest command, not "unexpected arguments".
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, !first.hasPrefix("-"), first != "help" {
            let names = configuration.subcommands.map { $0._commandName }
            if !names.contains(first) {
                let closest = names.map { (name: $0, distance: CommandSuggestion.distance(first, $0)) }
                    .min { $0.distance < $1.distance }
                var message = "unknown command '\(first)'"
                if let closest, closest.distance <= max(2, first.count / 3) { message += "; did you mean '\(closest.name)'?" }
                printError(message + " (rampart --help lists the commands)")
                Foundation.exit(64)
            }
        }
        await main(nil)
    }
}

/// The edit distance that picks the command an operator probably meant.
enum CommandSuggestion {
    /// Levenshtein distance, with a swap of two neighbouring letters counting once ("devcies").
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}

/// Options every command that calls the bus shares.
struct ClientOptions: ParsableArguments {
    @OptionGroup var bus: BusOptions

    @Option(help: "table (for people) or json (for scripts).")
    var output: OutputFormat = Environment.value("RAMPART_OUTPUT").flatMap(OutputFormat.init(rawValue:)) ?? .table

    // `.unconditional`: `--timeout -1` is read as the value -1 (and refused by `validate` with the range),
    // not as a missing value followed by an unknown flag.
    @Option(parsing: .unconditional, help: "Seconds to wait for an answer (env RAMPART_TIMEOUT).")
    var timeout: Double = Environment.value("RAMPART_TIMEOUT").flatMap(Double.init) ?? 5

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
    }

    var timeoutDuration: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// A client with this operator's key (`--key`, or `operators/admin.key` of `--keys`); a key that
    /// cannot be used is a usage error (exit 64) with the reason.
    func makeClient() throws -> BusClient {
        let security: BusSecurity
        do {
            security = try bus.security(defaultKey: "operators/admin.key", logger: Logger(label: "rampart.cli"))
        } catch {
            printError("\(error)")
            throw ExitCode(64)
        }
        return BusClient(endpoint: bus.endpoint, security: security, caller: "rampart-cli@\(ProcessInfo.processInfo.hostName)")
    }

    /// Runs `body` with a connected client; a failed call prints its status and exits with its code.
    func withClient<T>(_ body: (BusClient) async throws -> T) async throws -> T {
        let client = try makeClient()
        defer { client.close() }
        do {
            return try await body(client)
        } catch let error as RPCError {
            printError("\(error.code.name): \(error.message)")
            throw ExitCode(Self.exitCode(for: error.code))
        } catch let failure as CommandFailure {
            throw failure.exit()
        }
    }

    /// Calls `method` with this command's deadline; `service` overrides the method's own (a device's).
    func call<Request, Response>(
        _ client: BusClient, _ method: RPCMethod<Request, Response>, _ request: Request, service: String? = nil,
        idempotent: Bool = false
    ) async throws -> Response {
        try await client.call(method, request, service: service, timeout: timeoutDuration, idempotent: idempotent)
    }

    static func exitCode(for code: RPCStatus) -> Int32 {
        switch code {
        case .notFound: 3
        case .alreadyExists, .failedPrecondition, .aborted, .permissionDenied, .unauthenticated: 4
        case .unavailable, .deadlineExceeded, .resourceExhausted: 5
        case .invalidArgument, .outOfRange, .unimplemented: 6
        case .dataLoss: 11
        default: 1
        }
    }
}

/// How results are printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Writes a line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("rampart: \(message)\n".utf8))
}
