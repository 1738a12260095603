import Foundation
import Synchronization
import Testing

@testable import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

#if os(Linux)
    /// Whether the thread at `thread` ("/proc/PID/task/TID") is blocked in poll(2) or ppoll(2) now: /proc shows
    /// the number of the system call it is in ("running" when it is in none).
    private func blockedInPoll(_ thread: String) -> Bool {
        guard let text = try? String(contentsOfFile: thread + "/syscall", encoding: .utf8),
            let number = text.split(separator: " ").first.flatMap({ Int($0) })
        else { return false }
        #if arch(x86_64)
            return number == 7 || number == 271  // poll, ppoll
        #else
            return number == 73  // ppoll (arm64 has no poll)
        #endif
    }
#endif

/// A unique inproc endpoint, so tests running side by side never meet.
private func inprocEndpoint(_ name: String) -> String {
    "inproc://zmq-tests-\(name)-\(UUID().uuidString)"
}

/// Waits up to `timeoutMs` for a whole message on `socket`; nil when none came.
private func receive(_ socket: ZMQSocket, timeoutMs: Int = 2000) throws -> [Data]? {
    var poller = ZMQPoller()
    let index = poller.add(socket)
    let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
    while true {
        if let frames = try socket.receive(dontWait: true) { return frames }
        let left = Int(deadline.timeIntervalSinceNow * 1000)
        if left <= 0 { return nil }
        try poller.poll(timeoutMilliseconds: left)
        _ = poller.isReadable(index)
    }
}

/// Sends a DEALER message through a ROUTER and back; returns what each side received.
private func roundTrip(router: ZMQSocket, dealer: ZMQSocket, request: [Data], reply: [Data]) throws -> ([Data], [Data])
{
    #expect(try dealer.send(request))
    let atRouter = try #require(try receive(router), "the ROUTER received nothing")
    let routingId = try #require(atRouter.first)
    #expect(try router.send([routingId] + reply))
    let atDealer = try #require(try receive(dealer), "the DEALER received nothing")
    return (atRouter, atDealer)
}

@Suite("ZeroMQ: ROUTER/DEALER multipart messages")
struct RouterDealerTests {
    @Test(
        "a multipart message crosses ROUTER/DEALER over inproc with the routing id in front, and the reply comes back")
    func inprocRoundTrip() throws {
        let endpoint = inprocEndpoint("rd")
        let router = try ZMQSocket(.router)
        try router.bind(endpoint)
        let dealer = try ZMQSocket(.dealer)
        try dealer.setOption(5 /* ZMQ_ROUTING_ID */, bytes: Array("dealer-7".utf8))
        try dealer.connect(endpoint)

        let request = [Data(), Data("RB2C".utf8), Data("inventory".utf8), Data([0, 1, 2, 255])]
        let reply = [Data(), Data("RB2C".utf8), Data("answer".utf8)]
        let (atRouter, atDealer) = try roundTrip(router: router, dealer: dealer, request: request, reply: reply)
        #expect(atRouter == [Data("dealer-7".utf8)] + request)
        #expect(atDealer == reply)
    }

    @Test("over tcp 127.0.0.1 on a wildcard port: lastEndpoint gives the real port and a 1 MiB frame arrives whole")
    func tcpRoundTrip() throws {
        let router = try ZMQSocket(.router)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let port = try #require(Int(endpoint.dropFirst("tcp://127.0.0.1:".count)))
        #expect(port > 0 && port < 65536)

        let dealer = try ZMQSocket(.dealer)
        try dealer.connect(endpoint)
        let big = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let (atRouter, atDealer) = try roundTrip(
            router: router, dealer: dealer, request: [Data("hello".utf8), big], reply: [Data("back".utf8), big])
        #expect(atRouter.count == 3)
        #expect(Array(atRouter.dropFirst()) == [Data("hello".utf8), big])
        #expect(atDealer == [Data("back".utf8), big])
    }

    @Test("empty frames are kept, wherever they are in the message")
    func emptyFramesPreserved() throws {
        let endpoint = inprocEndpoint("empty")
        let router = try ZMQSocket(.router)
        try router.bind(endpoint)
        let dealer = try ZMQSocket(.dealer)
        try dealer.connect(endpoint)
        let frames = [Data(), Data(), Data("x".utf8), Data(), Data()]
        let (atRouter, atDealer) = try roundTrip(router: router, dealer: dealer, request: frames, reply: frames)
        #expect(Array(atRouter.dropFirst()) == frames)
        #expect(atDealer == frames)
        let (_, single) = try roundTrip(router: router, dealer: dealer, request: [Data()], reply: [Data()])
        #expect(single == [Data()])
    }

    @Test("receive(dontWait:) returns nil at once when nothing is there")
    func receiveDontWaitNil() throws {
        let router = try ZMQSocket(.router)
        try router.bind(inprocEndpoint("nothing"))
        let started = Date()
        #expect(try router.receive(dontWait: true) == nil)
        #expect(Date().timeIntervalSince(started) < 1)
    }

    @Test("send(dontWait:) returns false when a DEALER has no peer to send to")
    func sendDontWaitWouldBlock() throws {
        let dealer = try ZMQSocket(.dealer)
        #expect(try dealer.send([Data("x".utf8)], dontWait: true) == false)
    }

    @Test("closing a socket twice is safe")
    func closeTwice() throws {
        let socket = try ZMQSocket(.dealer)
        socket.close()
        socket.close()
    }
}

@Suite("ZeroMQ: poller and Wakeup")
struct PollerTests {
    @Test("a Wakeup signalled before polling makes the poller report its descriptor readable, not the socket")
    func wakeupBeforePoll() throws {
        let socket = try ZMQSocket(.router)
        try socket.bind(inprocEndpoint("poll"))
        let wakeup = Wakeup()
        var poller = ZMQPoller()
        let socketIndex = poller.add(socket)
        let wakeupIndex = poller.add(fileDescriptor: wakeup.readDescriptor)

        #expect(try poller.poll(timeoutMilliseconds: 0) == 0)
        wakeup.signal()
        wakeup.signal()
        #expect(try poller.poll(timeoutMilliseconds: 1000) == 1)
        #expect(poller.isReadable(wakeupIndex))
        #expect(!poller.isReadable(socketIndex))

        wakeup.drain()
        #expect(try poller.poll(timeoutMilliseconds: 50) == 0, "drain empties the pipe")
        #expect(!poller.isReadable(wakeupIndex))
    }

    @Test("signal() from another thread wakes a poll that would otherwise wait 10 s")
    func wakeupFromOtherThread() throws {
        let wakeup = Wakeup()
        var poller = ZMQPoller()
        let index = poller.add(fileDescriptor: wakeup.readDescriptor)
        let started = Date()
        #if os(Linux)
            // This thread as /proc names it ("PID/task/TID"): the signal comes once it is blocked in poll.
            let thread = "/proc/" + (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self"))
            Thread.detachNewThread {
                let deadline = Date().addingTimeInterval(5)
                while !blockedInPoll(thread) && Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
                wakeup.signal()
            }
        #else
            // No portable way to see another thread blocked in poll: a delay stands for it.
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 0.1)
                wakeup.signal()
            }
        #endif
        #expect(try poller.poll(timeoutMilliseconds: 10_000) == 1)
        #expect(poller.isReadable(index))
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("no signal is lost: work handed over while the poller drains is always seen or wakes the next poll")
    func noLostWakeup() throws {
        // Two producers hand over 100,000 items one at a time (queue, then signal), as handler tasks
        // hand replies to a socket thread; the consumer polls, drains, then takes the queue. A signal
        // that lands inside drain() must not leave the Wakeup believing a byte is in the pipe when none
        // is: then later signals write nothing and their items wait for the poll's timeout.
        let wakeup = Wakeup()
        let queue = Mutex<[Int]>([])
        let perProducer = 50_000
        let done = Atomic<Int>(0)
        for producer in 0..<2 {
            Thread.detachNewThread {
                for item in 0..<perProducer {
                    queue.withLock { $0.append(producer * perProducer + item) }
                    wakeup.signal()
                }
                done.add(1, ordering: .sequentiallyConsistent)
            }
        }
        var poller = ZMQPoller()
        poller.add(fileDescriptor: wakeup.readDescriptor)
        var taken = 0
        var stalls = 0
        while taken < 2 * perProducer {
            if try poller.poll(timeoutMilliseconds: 2000) == 0 {
                // Woken by nothing although items are queued: a lost wakeup.
                if !queue.withLock({ $0.isEmpty }) { stalls += 1 }
            }
            wakeup.drain()
            taken += queue.withLock { queue in
                defer { queue.removeAll(keepingCapacity: true) }
                return queue.count
            }
            #expect(stalls == 0)
            if stalls > 0 { break }
        }
        #expect(stalls == 0, "items waited for the poll's timeout: a signal was lost")
        #expect(taken == 2 * perProducer || stalls > 0)
    }

    @Test("signalling far more often than the pipe holds never blocks, and one drain empties it")
    func manySignals() throws {
        let wakeup = Wakeup()
        for _ in 0..<100_000 { wakeup.signal() }
        var poller = ZMQPoller()
        let index = poller.add(fileDescriptor: wakeup.readDescriptor)
        #expect(try poller.poll(timeoutMilliseconds: 0) == 1)
        wakeup.drain()
        #expect(try poller.poll(timeoutMilliseconds: 0) == 0)
        #expect(!poller.isReadable(index))
    }

    @Test("a socket with a message waiting is reported readable")
    func socketReadable() throws {
        let endpoint = inprocEndpoint("readable")
        let router = try ZMQSocket(.router)
        try router.bind(endpoint)
        let dealer = try ZMQSocket(.dealer)
        try dealer.connect(endpoint)
        try dealer.send([Data("ping".utf8)])
        var poller = ZMQPoller()
        let index = poller.add(router)
        #expect(try poller.poll(timeoutMilliseconds: 2000) == 1)
        #expect(poller.isReadable(index))
    }
}

@Suite("ZeroMQ: PUB/SUB")
struct PubSubTests {
    @Test("a SUB subscribed to a prefix gets matching topics in order and never the others")
    func prefixSubscription() throws {
        let endpoint = inprocEndpoint("pubsub")
        let publisher = try ZMQSocket(.pub)
        try publisher.bind(endpoint)
        let subscriber = try ZMQSocket(.sub)
        try subscriber.subscribe("backup.")
        try subscriber.connect(endpoint)

        // Subscriptions travel to the publisher asynchronously: publish until one arrives.
        var joined = false
        for _ in 0..<100 where !joined {
            try publisher.send([Data("backup.sync".utf8), Data()])
            joined = try receive(subscriber, timeoutMs: 20) != nil
        }
        try #require(joined, "the subscription never reached the publisher")

        let topics = [
            "inventory.device.connected", "backup.job.queued", "backupx", "links.exported", "backup.job.done",
        ]
        for (index, topic) in topics.enumerated() {
            try publisher.send([Data(topic.utf8), Data([UInt8(index)])])
        }
        var received: [String] = []
        while let frames = try receive(subscriber, timeoutMs: 2000) {
            let topic = String(decoding: frames[0], as: UTF8.self)
            if topic == "backup.sync" { continue }
            #expect(frames.count == 2)
            received.append(topic)
            if topic == "backup.job.done" { break }
        }
        #expect(received == ["backup.job.queued", "backup.job.done"])
    }
}

@Suite("ZeroMQ: message size limit")
struct MaxMessageSizeTests {
    @Test(
        "a peer sending more than setMaxMessageSize is dropped: nothing arrives; a fresh peer's normal message still does"
    )
    func oversizedDropped() throws {
        let router = try ZMQSocket(.router)
        try router.setMaxMessageSize(1024)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = router.lastEndpoint

        let big = try ZMQSocket(.dealer)
        try big.connect(endpoint)
        try big.send([Data(count: 4096)])
        #expect(try receive(router, timeoutMs: 300) == nil, "an oversized message must not be delivered")
        big.close()

        let fresh = try ZMQSocket(.dealer)
        try fresh.connect(endpoint)
        try fresh.send([Data("small".utf8), Data(count: 1000)])
        let frames = try #require(try receive(router, timeoutMs: 2000), "a normal message must still get through")
        #expect(Array(frames.dropFirst()) == [Data("small".utf8), Data(count: 1000)])
    }
}

@Suite("ZeroMQ: errors and context")
struct ZMQErrorTests {
    @Test("an error describes the operation and libzmq's text for its errno")
    func descriptions() {
        let wouldBlock = ZMQError(code: EAGAIN, operation: "receive")
        #expect(wouldBlock.description == "receive: Resource temporarily unavailable")
        #expect(wouldBlock.isWouldBlock && !wouldBlock.isInterrupted && !wouldBlock.isTerminated)
        let interrupted = ZMQError(code: EINTR, operation: "poll")
        #expect(interrupted.description == "poll: Interrupted system call")
        #expect(interrupted.isInterrupted && !interrupted.isWouldBlock)
        // ETERM is libzmq's own errno: ZMQ_HAUSNUMERO (156384712) + 53.
        let terminated = ZMQError(code: 156_384_765, operation: "receive")
        #expect(terminated.isTerminated)
        #expect(terminated.description == "receive: Context was terminated")
        #expect(wouldBlock == ZMQError(code: EAGAIN, operation: "receive"))
        #expect(wouldBlock != ZMQError(code: EAGAIN, operation: "send"))
    }

    @Test("a context holds as many sockets as the process may open files, past libzmq's default of 1,023")
    func socketLimit() throws {
        let files = OpenFiles.raiseToHardLimit()
        let context = ZMQContext()
        #expect(context.maxSockets == ZMQContext.socketLimit(files: files, libzmqLimit: 65535), "\(context.maxSockets) for \(files) files")
        // Each socket holds a descriptor (its mailbox): 1,100 need more than 1,100 files.
        try #require(files > 2400, "this test needs a process that may open more than 2,400 files, not \(files)")
        let sockets = try (0..<1100).map { _ in try ZMQSocket(.dealer, context: context) }
        #expect(sockets.count == 1100)
    }

    @Test("the default of 1,023 sockets is the floor, and the open-file limit otherwise (pure)")
    func socketLimitRule() {
        #expect(ZMQContext.socketLimit(files: 600, libzmqLimit: 65535) == 1023)
        #expect(ZMQContext.socketLimit(files: 20000, libzmqLimit: 65535) == 20000)
        #expect(ZMQContext.socketLimit(files: 1 << 20, libzmqLimit: 65535) == 65535)
        #expect(ZMQContext.socketLimit(files: 5000, libzmqLimit: 0) == 5000, "no ceiling reported")
    }

    @Test("bind to an unknown transport throws a ZMQError naming the endpoint")
    func bindFails() throws {
        let socket = try ZMQSocket(.router)
        let error = try #require(throws: ZMQError.self) { try socket.bind("carrier-pigeon://nest") }
        #expect(error.operation == "bind carrier-pigeon://nest")
        #expect(error.description.hasPrefix("bind carrier-pigeon://nest: "))
        #expect(error.code == EPROTONOSUPPORT)
    }

    @Test("binding the same tcp port twice throws 'Address already in use'")
    func bindTwice() throws {
        let first = try ZMQSocket(.router)
        try first.bind("tcp://127.0.0.1:*")
        let second = try ZMQSocket(.router)
        let error = try #require(throws: ZMQError.self) { try second.bind(first.lastEndpoint) }
        #expect(error.code == EADDRINUSE)
        #expect(error.description.hasSuffix("Address already in use"))
    }

    @Test("the libzmq version is 4.x.y")
    func version() {
        let parts = ZMQContext.version.split(separator: ".").compactMap { Int($0) }
        #expect(parts.count == 3)
        #expect(parts.first == 4)
    }
}
