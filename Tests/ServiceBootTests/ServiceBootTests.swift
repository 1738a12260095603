import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import RampartServiceBoot

/// What happened, in order, across the services of one group.
private final class Steps: Sendable {
    private let steps = Mutex<[String]>([])
    func add(_ step: String) { steps.withLock { $0.append(step) } }
    var all: [String] { steps.withLock { $0 } }
}

private struct Failure: Error, Equatable {}

/// Serves until its graceful shutdown, like a `ServiceHost` draining its requests; says when it
/// started, and whether it was shut down gracefully or cancelled.
private struct Serving: Service {
    let steps: Steps
    let started: AsyncStream<Void>.Continuation

    func run() async {
        steps.add("serving")
        started.yield()
        do {
            try await gracefulShutdown()
            steps.add("stopped serving")
        } catch {
            steps.add("cancelled")
        }
    }
}

/// Throws once the serving service has started.
private struct Throwing: Service {
    let started: AsyncStream<Void>
    func run() async throws {
        for await _ in started { break }
        throw Failure()
    }
}

@Suite("Boot: one way to start and stop a service (docs/decisions.md, \"One way to boot a service\")")
struct ServiceBootTests {
    @Test("Boot: a service that throws shuts the others down gracefully, the last started first, and the pool closes after them")
    func throwingServiceClosesPoolLast() async throws {
        let steps = Steps()
        let (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
        let pool = ClosedLast("database pool") { steps.add("pool closed") }
        let client = ClosedLast("bus client") { steps.add("client closed") }
        await #expect(throws: Failure.self) {
            try await ServiceBoot.runGroup(
                closedLast: [pool, client],
                services: [
                    .required(Serving(steps: steps, started: startedContinuation)), .required(Throwing(started: started)),
                ],
                handlesSignals: false, logger: Logger(label: "boot-tests"))
        }
        #expect(steps.all == ["serving", "stopped serving", "client closed", "pool closed"])
    }
}
