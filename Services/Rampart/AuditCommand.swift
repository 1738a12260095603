import ArgumentParser
import Foundation
import RampartAPI
import RampartAudit
import RampartBasics
import RampartBus
import RampartProto

/// `rampart audit`: the append-only audit log (P9) — who did what, when, from which key —
/// oldest first, narrowed by time, caller, method and outcome.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The audit log: who did what, when, from which key (oldest first).",
        discussion: """
            Times are RFC 3339 (2026-11-27T13:00:00Z) or a duration ago (2h, 30m, 1d12h). --caller matches \
            a caller's name, its full key, or the first 8 or more characters of its key (as the KEY column \
            shows). Without --all one page of --limit entries is shown; the next page starts with \
            --after-id <last ID>. See docs/audit.md.
            """)

    @Option(help: "Entries at or after this time: RFC 3339, or a duration ago such as 2h.") var since: String?
    @Option(help: "Entries before this time: RFC 3339, or a duration ago such as 30m.") var until: String?
    @Option(help: "A caller: name, key, or key prefix (8+ characters).") var caller: String?
    @Option(help: "Methods starting with this, e.g. rampart.links.v1. or \"GET /v1/backups/\".") var method: String?
    @Flag(help: "Only refused or failed calls (outcome other than OK).") var refused = false
    @Option(help: "Entries per page (1-1000).") var limit: UInt32 = UInt32(AuditFilter.defaultLimit)
    @Option(name: .customLong("after-id"), help: "Start after this entry id (the last ID of the previous page).")
    var afterId: UInt64 = 0
    @Flag(help: "Follow the pages to the end (of the entries there when the command started).") var all = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard (1...UInt32(AuditFilter.maxLimit)).contains(limit) else {
            throw ValidationError("--limit must be between 1 and \(AuditFilter.maxLimit)")
        }
        _ = try request(now: Date())
    }

    /// The first page's request; throws a `ValidationError` for a time that does not parse or an empty window.
    func request(now: Date) throws -> Rampart_Audit_V1_ListAuditRequest {
        var request = Rampart_Audit_V1_ListAuditRequest()
        func time(_ text: String?, _ option: String) throws -> Int64 {
            guard let text else { return 0 }
            do {
                return try AuditTime.parse(text, now: now)
            } catch {
                throw ValidationError("\(option): \(error.message)")
            }
        }
        request.sinceUnixMs = try time(since, "--since")
        request.untilUnixMs = try time(until, "--until")
        if since != nil, until != nil, request.sinceUnixMs >= request.untilUnixMs {
            throw ValidationError("--since must be before --until")
        }
        request.caller = caller ?? ""
        request.methodPrefix = method ?? ""
        request.refusedOnly = refused
        request.afterID = afterId
        request.limit = limit
        return request
    }

    func run() async throws {
        let now = Date()
        var request = try request(now: now)
        // --all ends with what was there when the command started: the log grows while it is read
        // (every refused call is an entry), and without an end the paging could follow it forever.
        if all, until == nil { request.untilUnixMs = max(now.unixMillis + 1, request.sinceUnixMs + 1) }
        var collected = Rampart_Audit_V1_ListAuditResponse()
        try await options.withClient { client in
            while true {
                let page: Rampart_Audit_V1_ListAuditResponse = try await options.call(
                    client, AuditAPI.list, request, idempotent: true)
                collected.entries += page.entries
                collected.more = page.more
                guard all, page.more, let last = page.entries.last, last.id > request.afterID else { break }
                request.afterID = last.id
            }
        }
        if options.output == .json { return try printJSON(collected) }
        var table = Table("ID", "TIME", "CALLER", "KEY", "METHOD", "SUBJECT", "OUTCOME", "MESSAGE")
        for entry in collected.entries {
            let who = [entry.callerName, entry.callerRole].filter { !$0.isEmpty }.joined(separator: "/")
            table.add(
                "\(entry.id)", formatTime(entry.timeUnixMs), who.isEmpty ? "-" : who, Self.shortKey(entry.callerKey),
                Self.shortMethod(entry.method), entry.subject.isEmpty ? "-" : entry.subject, entry.outcome.name,
                entry.message)
        }
        print(table.render())
        if collected.more, let last = collected.entries.last {
            printError("more entries follow: --after-id \(last.id) for the next page, or --all")
        }
    }

    /// A key as people compare it: the first 8 characters of a Z85 key; a link's "link:<key id>" whole.
    static func shortKey(_ key: String) -> String {
        if key.isEmpty { return "-" }
        if key.hasPrefix("link:") { return key }
        return String(key.prefix(8))
    }

    /// "Links/ExportBackupLinks" for "rampart.links.v1.Links/ExportBackupLinks"; HTTP methods unchanged.
    static func shortMethod(_ method: String) -> String {
        guard let slash = method.firstIndex(of: "/"), !method.contains(" ") else { return method }
        let service = method[..<slash]
        let name = service.split(separator: ".").last.map(String.init) ?? String(service)
        return name + method[slash...]
    }
}
