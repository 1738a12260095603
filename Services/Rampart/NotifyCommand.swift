import ArgumentParser
import Foundation
import RampartAPI
import RampartProto

/// `rampart notify`: webhooks told of chosen events (P15; docs/notifications.md).
struct NotifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify", abstract: "Webhooks told of chosen events (rule P15): add, list, remove, test.",
        subcommands: [Add.self, List.self, Remove.self, Test.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A webhook: each event of the topics chosen is POSTed to URL as JSON, once, in order.",
            discussion: """
                A topic is exact (backup.job.failed) or a prefix ending in '.' or '*' (backup.*). \
                With --secret-file, every body is signed: X-Rampart-Signature: sha256=<HMAC-SHA256 of the body, hex>. \
                Delivery starts with the next event (--from-start: with the first in the journal).
                """)
        @Argument(help: "http:// or https:// URL the events are POSTed to.") var url: String
        @Option(name: .customLong("topic"), help: "A topic the hook is told of (repeat).") var topics: [String] = []
        @Option(help: "A file holding the key that signs each body (its first line; kept by the notifier).")
        var secretFile: String?
        @Flag(help: "Deliver every event already in the journal too.") var fromStart = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard !topics.isEmpty else { throw ValidationError("name at least one --topic (e.g. --topic backup.job.failed)") }
        }

        func run() async throws {
            var request = Rampart_Notify_V1_AddHookRequest()
            request.url = url
            request.topics = topics
            request.fromStart = fromStart
            if let secretFile {
                guard let text = try? String(contentsOfFile: secretFile, encoding: .utf8) else {
                    printError("cannot read the secret file \(secretFile)")
                    throw ExitCode(1)
                }
                let secret = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
                guard !secret.trimmingCharacters(in: .whitespaces).isEmpty else {
                    printError("the secret file \(secretFile) is empty")
                    throw ExitCode(6)
                }
                request.secret = secret
            }
            let response: Rampart_Notify_V1_AddHookResponse = try await options.withClient {
                try await options.call($0, NotifyAPI.addHook, request)
            }
            if options.output == .json { return try printJSON(response.hook) }
            printHooks([response.hook])
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every webhook (URLs masked) and how far its delivery has come.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let response: Rampart_Notify_V1_ListHooksResponse = try await options.withClient {
                try await options.call($0, NotifyAPI.listHooks, Rampart_Notify_V1_ListHooksRequest(), idempotent: true)
            }
            if options.output == .json { return try printJSON(response) }
            printHooks(response.hooks)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a webhook: nothing more is sent to it.")
        @Argument(help: "The hook's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Notify_V1_RemoveHookRequest()
            request.id = id
            let response: Rampart_Notify_V1_RemoveHookResponse = try await options.withClient {
                try await options.call($0, NotifyAPI.removeHook, request)
            }
            if options.output == .json { return try printJSON(response) }
            print("removed hook \(response.id)")
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a webhook one test event (topic notify.test, seq 0) now; exit 0 when it answered 2xx, 5 when not.")
        @Argument(help: "The hook's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var request = Rampart_Notify_V1_TestHookRequest()
            request.id = id
            let response: Rampart_Notify_V1_TestHookResponse = try await options.withClient {
                try await options.call($0, NotifyAPI.testHook, request)
            }
            if options.output == .json {
                try printJSON(response)
            } else if response.error.isEmpty {
                print("hook \(id) answered HTTP \(response.httpStatus)")
            }
            guard response.error.isEmpty else {
                printError("hook \(id) did not take the test event: \(response.error)")
                throw ExitCode(5)
            }
        }
    }
}

private func printHooks(_ hooks: [Rampart_Notify_V1_Hook]) {
    var table = Table("ID", "URL", "TOPICS", "SIGNED", "LAST SEQ", "LAST DELIVERED", "FAILURES", "LAST ERROR")
    for hook in hooks {
        table.add(
            hook.id, hook.url, hook.topics.joined(separator: ","), hook.signed ? "yes" : "no", "\(hook.lastSeq)",
            formatTime(hook.lastDeliveredUnixMs), "\(hook.failures)", hook.lastError.isEmpty ? "-" : hook.lastError)
    }
    print(table.render())
}
