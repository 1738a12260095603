import Foundation
import RampartAPI
import RampartBus
import RampartProto
import Testing

/// Drives a `BrokerStateMachine` with readable events; time is whatever the test says.
private struct Harness {
    var broker: BrokerStateMachine

    init(
        heartbeatIntervalMs: Int64 = 1000, liveness: Int64 = 3, defaultDeadlineMs: Int64 = 30_000, maxQueued: Int? = nil
    ) {
        var configuration = BrokerStateMachine.Configuration(
            heartbeatIntervalMs: heartbeatIntervalMs, liveness: liveness, defaultDeadlineMs: defaultDeadlineMs)
        if let maxQueued { configuration.maxQueuedPerService = maxQueued }
        broker = BrokerStateMachine(configuration: configuration)
    }

    mutating func ready(_ worker: String, _ service: String = "inventory", capacity: UInt32 = 1, at now: Int64 = 0)
        -> [BrokerStateMachine.Action]
    {
        broker.receive(
            .workerReady(
                worker: Data(worker), service: service, info: workerInfo("\(worker)-instance", capacity: capacity)),
            now: now)
    }

    mutating func request(
        _ client: String, id: UInt64, _ service: String = "inventory", deadline: Int64 = 0, payload: Data = Data(),
        at now: Int64 = 0
    ) -> [BrokerStateMachine.Action] {
        broker.receive(
            .clientRequest(
                client: Data(client), service: service, header: requestHeader(id: id, deadline: deadline),
                payload: payload),
            now: now)
    }

    mutating func reply(
        _ worker: String, to client: String, id: UInt64, payload: Data = Data("answer"), at now: Int64 = 0
    ) -> [BrokerStateMachine.Action] {
        broker.receive(
            .workerReply(
                worker: Data(worker), client: Data(client), header: replyHeader(id: id, by: worker), payload: payload),
            now: now)
    }

    /// Tick without the periodic heartbeats, which most tests do not care about.
    mutating func tick(at now: Int64) -> [BrokerStateMachine.Action] {
        broker.tick(now: now).filter { if case .heartbeat = $0 { false } else { true } }
    }
}

/// Where a dispatch went: (worker, client, request id).
private func dispatched(_ actions: [BrokerStateMachine.Action]) -> [(worker: String, client: String, id: UInt64)] {
    actions.compactMap {
        guard case .dispatch(let worker, let client, let header, _) = $0 else { return nil }
        return (String(decoding: worker, as: UTF8.self), String(decoding: client, as: UTF8.self), header.requestID)
    }
}

/// The replies among `actions`: (client, service, header).
private func replies(_ actions: [BrokerStateMachine.Action]) -> [(
    client: String, service: String, header: Rampart_Bus_V1_ReplyHeader
)] {
    actions.compactMap {
        guard case .reply(let client, let service, let header, _) = $0 else { return nil }
        return (String(decoding: client, as: UTF8.self), service, header)
    }
}

/// Expects `actions` to be exactly one reply from the broker itself with `status`, and returns its message.
@discardableResult
private func expectBrokerReply(
    _ actions: [BrokerStateMachine.Action], client: String, id: UInt64, _ status: Rampart_Bus_V1_StatusCode,
    sourceLocation: SourceLocation = #_sourceLocation
) -> String {
    let found = replies(actions)
    #expect(
        actions.count == 1 && found.count == 1, "expected one reply, got \(actions)", sourceLocation: sourceLocation)
    guard let reply = found.first else { return "" }
    #expect(reply.client == client, sourceLocation: sourceLocation)
    #expect(reply.header.requestID == id, sourceLocation: sourceLocation)
    #expect(
        reply.header.status == status, "status \(reply.header.status.name): \(reply.header.message)",
        sourceLocation: sourceLocation)
    #expect(reply.header.answeredBy == "broker", sourceLocation: sourceLocation)
    #expect(!reply.header.message.isEmpty, sourceLocation: sourceLocation)
    return reply.header.message
}

@Suite("Broker: routing by service name (docs/rules.md#bus)")
struct BrokerRoutingTests {
    @Test("Bus: a request for a service with no instance gets UNAVAILABLE from the broker at once, naming the service")
    func unavailableWithoutInstance() {
        var h = Harness()
        let message = expectBrokerReply(h.request("c1", id: 1, "backup"), client: "c1", id: 1, .unavailable)
        #expect(message.contains("backup"))
        #expect(h.broker.requestsRouted == 0)
        #expect(h.broker.status().services.isEmpty, "a refused request must not leave a queue behind")
    }

    @Test("Bus: an instance of another service does not make a service available")
    func otherServiceDoesNotCount() {
        var h = Harness()
        #expect(h.ready("w1", "inventory").isEmpty)
        expectBrokerReply(h.request("c1", id: 1, "backup"), client: "c1", id: 1, .unavailable)
    }

    @Test("Bus: requests go round-robin across two instances of a service")
    func roundRobin() {
        var h = Harness()
        _ = h.ready("w1", capacity: 10)
        _ = h.ready("w2", capacity: 10)
        var order: [String] = []
        for id in 1...6 {
            let sent = dispatched(h.request("c", id: UInt64(id)))
            #expect(sent.count == 1)
            order += sent.map(\.worker)
        }
        #expect(order == ["w1", "w2", "w1", "w2", "w1", "w2"])
        #expect(h.broker.requestsRouted == 6)
    }

    @Test("Bus: the request is dispatched with the client's header and payload unchanged")
    func dispatchCarriesRequest() {
        var h = Harness()
        _ = h.ready("w1")
        let header = requestHeader(
            id: 5, method: InventoryAPI.getDevice.name, deadline: 10_000, metadata: ["caller": "me"])
        let actions = h.broker.receive(
            .clientRequest(client: Data("c"), service: "inventory", header: header, payload: Data("p")), now: 0)
        #expect(actions == [.dispatch(worker: Data("w1"), client: Data("c"), header: header, payload: Data("p"))])
    }

    @Test("Bus: an instance never holds more than its capacity; the rest queue and go out as replies free slots")
    func capacityAndQueue() {
        var h = Harness()
        _ = h.ready("w1", capacity: 2)
        #expect(dispatched(h.request("c", id: 1)).map(\.id) == [1])
        #expect(dispatched(h.request("c", id: 2)).map(\.id) == [2])
        #expect(h.request("c", id: 3).isEmpty, "third request must wait")
        #expect(h.request("c", id: 4).isEmpty, "fourth request must wait")

        var status = h.broker.status().services
        #expect(status.count == 1)
        #expect(status.first?.queued == 2)
        #expect(status.first?.inFlight == 2)

        let afterReply = h.reply("w1", to: "c", id: 1)
        #expect(replies(afterReply).map(\.header.requestID) == [1])
        #expect(dispatched(afterReply).map(\.id) == [3], "the freed slot takes the oldest queued request")

        status = h.broker.status().services
        #expect(status.first?.queued == 1)
        #expect(status.first?.inFlight == 2)
    }

    @Test("Bus: an instance that announces itself with capacity 0 still takes one request at a time")
    func zeroCapacityMeansOne() {
        var h = Harness()
        _ = h.ready("w1", capacity: 0)
        #expect(dispatched(h.request("c", id: 1)).count == 1)
        #expect(h.request("c", id: 2).isEmpty)
    }

    @Test("Bus: queued requests are dispatched when a new instance announces itself")
    func readyDrainsQueue() {
        var h = Harness()
        _ = h.ready("w1", capacity: 1)
        _ = h.request("c", id: 1)
        _ = h.request("c", id: 2)
        _ = h.request("c", id: 3)
        let actions = h.ready("w2", capacity: 5)
        #expect(dispatched(actions).map(\.worker) == ["w2", "w2"])
        #expect(dispatched(actions).map(\.id) == [2, 3])
    }

    @Test("Bus: a reply is forwarded to the client that asked, even when two clients use the same request id")
    func replyToRightClient() {
        var h = Harness()
        _ = h.ready("w1", capacity: 2)
        _ = h.request("alice", id: 1, payload: Data("a"))
        _ = h.request("bob", id: 1, payload: Data("b"))

        let header = replyHeader(id: 1, status: .notFound, message: "nothing", by: "w1-instance")
        let actions = h.broker.receive(
            .workerReply(worker: Data("w1"), client: Data("bob"), header: header, payload: Data("for bob")), now: 1)
        #expect(
            actions == [.reply(client: Data("bob"), service: "inventory", header: header, payload: Data("for bob"))])

        let second = h.reply("w1", to: "alice", id: 1, payload: Data("for alice"))
        #expect(replies(second).map(\.client) == ["alice"])
        #expect(h.broker.status().services.first?.inFlight == 0)
    }

    @Test("Bus: a client's request id is unique across services: one queued for A refuses the same id for B")
    func duplicateRequestIdAcrossServices() {
        var h = Harness()
        _ = h.ready("a1", "a", capacity: 1)
        _ = h.ready("b1", "b", capacity: 1)
        _ = h.request("c", id: 1, "a")
        _ = h.request("c", id: 2, "a")  // queued at A
        expectBrokerReply(h.request("c", id: 2, "b"), client: "c", id: 2, .alreadyExists)
        // B's instance is still free for other requests, and A's queued request goes out when A frees up.
        #expect(dispatched(h.request("c", id: 3, "b")).map(\.worker) == ["b1"])
        #expect(dispatched(h.reply("a1", to: "c", id: 1)).map(\.id) == [2])
        #expect(replies(h.reply("b1", to: "c", id: 3)).map(\.header.requestID) == [3])
    }

    @Test("Bus: a second request with an id already in flight or queued gets ALREADY_EXISTS and is not dispatched")
    func duplicateRequestId() {
        var h = Harness()
        _ = h.ready("w1", capacity: 1)
        _ = h.request("c", id: 7)
        expectBrokerReply(h.request("c", id: 7), client: "c", id: 7, .alreadyExists)
        _ = h.request("c", id: 8)  // queued behind 7
        expectBrokerReply(h.request("c", id: 8), client: "c", id: 8, .alreadyExists)
        #expect(h.broker.requestsRouted == 1)
        #expect(h.broker.status().services.first?.queued == 1)

        // Once answered, the id is free again.
        _ = h.reply("w1", to: "c", id: 7)
        _ = h.reply("w1", to: "c", id: 8)
        #expect(dispatched(h.request("c", id: 7)).map(\.id) == [7])
    }

    @Test("Bus: when the queue of a service is full, a new request gets RESOURCE_EXHAUSTED")
    func queueLimit() {
        var h = Harness(maxQueued: 2)
        _ = h.ready("w1", capacity: 1)
        _ = h.request("c", id: 1)
        #expect(h.request("c", id: 2).isEmpty)
        #expect(h.request("c", id: 3).isEmpty)
        expectBrokerReply(h.request("c", id: 4), client: "c", id: 4, .resourceExhausted)
    }

    @Test("Bus: READY for the broker's own service name is refused with DISCONNECT")
    func readyForBrokerService() {
        var h = Harness()
        #expect(h.ready("w1", BusProtocol.brokerService) == [.disconnect(worker: Data("w1"))])
        #expect(h.broker.status().services.isEmpty)
    }

    @Test(
        "Bus: an instance that announces a second service is dropped (its requests get UNAVAILABLE) and told to DISCONNECT"
    )
    func readyForSecondService() {
        var h = Harness()
        _ = h.ready("w1", "inventory")
        _ = h.request("c", id: 1)
        let actions = h.ready("w1", "backup")
        #expect(replies(actions).map(\.header.status) == [.unavailable])
        #expect(actions.last == .disconnect(worker: Data("w1")))
        #expect(h.broker.status().services.isEmpty)
    }
}

@Suite("Broker: one identity, one device (P8)")
struct BrokerDeviceIdentityTests {
    @Test("P8: a second live instance of a device's service is refused with DISCONNECT; the first keeps every request")
    func secondDeviceInstanceRefused() {
        var h = Harness()
        _ = h.ready("box-1", "device/d1")
        #expect(h.ready("box-2", "device/d1") == [.disconnect(worker: Data("box-2"))])
        #expect(h.broker.status().services.first?.instances == ["box-1-instance"])
        #expect(h.broker.takeMembershipChanges().contains(
            .refused(service: "device/d1", instanceId: "box-2-instance", reason: BrokerStateMachine.secondDeviceInstanceReason)))
        for id in 1...3 {
            #expect(dispatched(h.request("c", id: UInt64(id), "device/d1")).map(\.worker) == ["box-1"])
            _ = h.reply("box-1", to: "c", id: UInt64(id))
        }
    }

    @Test("P8: once the broker dropped a silent device instance (3 missed heartbeats), a new one is admitted")
    func deviceInstanceAfterDrop() {
        var h = Harness(heartbeatIntervalMs: 1000, liveness: 3)
        _ = h.ready("box-1", "device/d1", at: 0)
        _ = h.tick(at: 3_500)
        #expect(h.broker.status().services.first?.instances.isEmpty ?? true)
        #expect(h.ready("box-2", "device/d1", at: 3_600).isEmpty)
        #expect(h.broker.status().services.first?.instances == ["box-2-instance"])
    }

    @Test("P8: other services keep several instances (only device services are one at a time)")
    func otherServicesScaleOut() {
        var h = Harness()
        _ = h.ready("w1", "backup")
        #expect(h.ready("w2", "backup").isEmpty)
        #expect(h.broker.status().services.first?.instances.count == 2)
    }

    @Test("P8: a device claim is admitted only with the device's id, its own key and the serial inventory holds")
    func claimChecks() {
        func claim(id: String = "d1", key: String? = "fw-1", serial: String = "SN1") -> Broker.DeviceClaim {
            Broker.DeviceClaim(deviceId: id, keyName: key, serial: serial, instanceId: "i")
        }
        #expect(claim().refusal(deviceId: "d1", name: "fw-1", serial: "SN1") == nil)
        #expect(claim(key: nil).refusal(deviceId: "d1", name: "fw-1", serial: "SN1") == nil, "plain mode: no key to compare")
        #expect(claim(key: "fw-2").refusal(deviceId: "d1", name: "fw-1", serial: "SN1")?.contains("may serve only its own device") == true)
        #expect(claim(serial: "OLD").refusal(deviceId: "d1", name: "fw-1", serial: "SN1")?.contains("this box has serial OLD") == true)
        #expect(claim(serial: "").refusal(deviceId: "d1", name: "fw-1", serial: "SN1")?.contains("names no serial") == true)
        #expect(claim(id: "fw-1").refusal(deviceId: "d1", name: "fw-1", serial: "SN1")?.contains("is not a device id") == true)
    }
}

@Suite("Broker: deadlines (P5: a client never hangs forever)")
struct BrokerDeadlineTests {
    @Test("P5: a request whose deadline has already passed on arrival gets DEADLINE_EXCEEDED and is not dispatched")
    func expiredOnArrival() {
        var h = Harness()
        _ = h.ready("w1")
        expectBrokerReply(h.request("c", id: 1, deadline: 1000, at: 1000), client: "c", id: 1, .deadlineExceeded)
        expectBrokerReply(h.request("c", id: 2, deadline: 5, at: 1000), client: "c", id: 2, .deadlineExceeded)
        #expect(h.broker.requestsRouted == 0)
    }

    @Test("P5: a queued request whose deadline passes gets DEADLINE_EXCEEDED at tick, once, and is never dispatched")
    func queuedDeadline() {
        var h = Harness()
        _ = h.ready("w1", capacity: 1)
        _ = h.request("c", id: 1, deadline: 10_000)
        #expect(h.request("c", id: 2, deadline: 500).isEmpty)
        #expect(h.tick(at: 499).isEmpty)
        let message = expectBrokerReply(h.tick(at: 500), client: "c", id: 2, .deadlineExceeded)
        #expect(message.contains("inventory"))
        #expect(h.tick(at: 600).isEmpty, "answered once only")
        #expect(h.broker.status().services.first?.queued == 0)

        let afterReply = h.reply("w1", to: "c", id: 1, at: 700)
        #expect(replies(afterReply).map(\.header.requestID) == [1])
        #expect(dispatched(afterReply).isEmpty, "the expired request must not reach an instance")
    }

    @Test(
        "P5: an in-flight request whose deadline passes gets DEADLINE_EXCEEDED; the late reply is dropped but frees the slot"
    )
    func inFlightDeadline() {
        var h = Harness()
        _ = h.ready("w1", capacity: 1)
        _ = h.request("c", id: 1, deadline: 500)
        _ = h.request("c", id: 2, deadline: 10_000)  // queued behind 1
        expectBrokerReply(h.tick(at: 500), client: "c", id: 1, .deadlineExceeded)
        #expect(h.tick(at: 900).isEmpty, "answered once only")

        let late = h.reply("w1", to: "c", id: 1, at: 1000)
        #expect(replies(late).isEmpty, "the client already had its answer")
        #expect(dispatched(late).map(\.id) == [2], "the late reply freed the slot for the queued request")
    }

    @Test("P5: a request without a deadline gets the configured default")
    func defaultDeadline() {
        var h = Harness(heartbeatIntervalMs: 100_000, defaultDeadlineMs: 2000)
        _ = h.ready("w1")
        _ = h.request("c", id: 1, at: 1000)
        #expect(h.tick(at: 2999).isEmpty)
        expectBrokerReply(h.tick(at: 3000), client: "c", id: 1, .deadlineExceeded)
    }
}

@Suite("Broker: heartbeats and liveness (MDP: 3 missed = dead)")
struct BrokerLivenessTests {
    @Test("Bus: tick sends each instance a heartbeat once per heartbeat interval")
    func heartbeatsPerInterval() {
        var h = Harness(heartbeatIntervalMs: 1000)
        _ = h.ready("w1")
        _ = h.ready("w2")
        let first = h.broker.tick(now: 0)
        #expect(
            Set(first.compactMap { if case .heartbeat(let w) = $0 { w } else { nil } }) == [Data("w1"), Data("w2")])
        #expect(h.broker.tick(now: 999).isEmpty)
        #expect(h.broker.tick(now: 1000).count == 2)
    }

    @Test("Bus: an instance silent for liveness × interval is dropped at tick; its in-flight requests get UNAVAILABLE")
    func silentInstanceDropped() {
        var h = Harness(heartbeatIntervalMs: 1000, liveness: 3)
        _ = h.ready("w1", capacity: 2, at: 0)
        _ = h.request("c", id: 1, deadline: 60_000, at: 10)
        _ = h.request("d", id: 2, deadline: 60_000, at: 10)
        #expect(h.tick(at: 2999).isEmpty)

        let actions = h.tick(at: 3000)
        let found = replies(actions)
        #expect(Set(found.map(\.client)) == ["c", "d"])
        #expect(found.allSatisfy { $0.header.status == .unavailable && $0.header.answeredBy == "broker" })
        #expect(found.allSatisfy { $0.header.message.contains("w1-instance") })
        #expect(h.broker.status().services.isEmpty)
        expectBrokerReply(h.request("c", id: 3, at: 3001), client: "c", id: 3, .unavailable)
    }

    @Test("Bus: a heartbeat (or a reply) from an instance keeps it alive for another liveness × interval")
    func heartbeatKeepsAlive() {
        var h = Harness(heartbeatIntervalMs: 1000, liveness: 3)
        _ = h.ready("w1", at: 0)
        #expect(h.broker.receive(.workerHeartbeat(worker: Data("w1")), now: 2000).isEmpty)
        #expect(h.tick(at: 4999).isEmpty)
        #expect(h.broker.status().services.first?.instances == ["w1-instance"])

        _ = h.request("c", id: 1, deadline: 100_000, at: 4999)
        _ = h.reply("w1", to: "c", id: 1, at: 4999)
        #expect(h.tick(at: 7998).isEmpty)
        #expect(h.broker.status().services.count == 1)
        #expect(h.tick(at: 7999).isEmpty, "no request was held, so nobody is answered")
        #expect(h.broker.status().services.isEmpty, "dropped after 3 silent intervals")
    }

    @Test("Bus: when the last instance goes, requests queued for its service get UNAVAILABLE")
    func lastInstanceGoneAnswersQueue() {
        var h = Harness()
        _ = h.ready("w1", capacity: 1)
        _ = h.request("c", id: 1)
        _ = h.request("c", id: 2)
        let actions = h.broker.receive(.workerDisconnect(worker: Data("w1")), now: 5)
        #expect(Set(replies(actions).map(\.header.requestID)) == [1, 2])
        #expect(replies(actions).allSatisfy { $0.header.status == .unavailable })
    }

    @Test("Bus: when one of two instances goes, queued requests stay and go to the other")
    func survivorTakesQueue() {
        var h = Harness()
        _ = h.ready("w1", capacity: 1)
        _ = h.ready("w2", capacity: 1)
        _ = h.request("c", id: 1)  // w1
        _ = h.request("c", id: 2)  // w2
        _ = h.request("c", id: 3)  // queued
        let gone = h.broker.receive(.workerDisconnect(worker: Data("w1")), now: 5)
        #expect(replies(gone).map(\.header.requestID) == [1])
        #expect(h.broker.status().services.first?.queued == 1)
        #expect(dispatched(h.reply("w2", to: "c", id: 2)).map { "\($0.worker)#\($0.id)" } == ["w2#3"])
    }

    @Test("Bus: a heartbeat or a reply from an instance the broker does not know gets DISCONNECT")
    func unknownInstance() {
        var h = Harness()
        #expect(
            h.broker.receive(.workerHeartbeat(worker: Data("ghost")), now: 0) == [.disconnect(worker: Data("ghost"))])
        #expect(h.reply("ghost", to: "c", id: 1) == [.disconnect(worker: Data("ghost"))])
    }

    @Test("Bus: a heartbeat from an instance dropped for silence gets DISCONNECT, so it announces itself again")
    func droppedInstanceToldToReconnect() {
        var h = Harness(heartbeatIntervalMs: 1000, liveness: 3)
        _ = h.ready("w1", at: 0)
        _ = h.tick(at: 3000)
        #expect(h.broker.receive(.workerHeartbeat(worker: Data("w1")), now: 3100) == [.disconnect(worker: Data("w1"))])
        #expect(h.ready("w1", at: 3200).isEmpty)
        #expect(dispatched(h.request("c", id: 1, at: 3300)).map(\.worker) == ["w1"])
    }

    @Test("Bus: a reply from an instance that does not hold that request is ignored")
    func replyFromWrongInstance() {
        var h = Harness()
        _ = h.ready("w1", capacity: 1)
        _ = h.ready("w2", capacity: 1)
        _ = h.request("c", id: 1)  // w1
        #expect(h.reply("w2", to: "c", id: 1).isEmpty)
        #expect(replies(h.reply("w1", to: "c", id: 1)).map(\.header.requestID) == [1])
    }
}

@Suite("Broker: instances joining and leaving, for the broker's log")
struct BrokerMembershipTests {
    @Test("Bus: joins, a goodbye, a drop for silence and a second service are reported once each, with the reason")
    func changesReportedOnce() {
        var h = Harness(heartbeatIntervalMs: 1000, liveness: 3)
        _ = h.ready("w1", at: 0)
        _ = h.ready("w2", at: 0)
        _ = h.ready("w3", "storage", at: 0)
        _ = h.ready("w1", at: 500)  // announcing the same service again is no change
        #expect(
            h.broker.takeMembershipChanges() == [
                .joined(service: "inventory", instanceId: "w1-instance"),
                .joined(service: "inventory", instanceId: "w2-instance"),
                .joined(service: "storage", instanceId: "w3-instance"),
            ])
        #expect(h.broker.takeMembershipChanges().isEmpty, "taken changes are gone")

        _ = h.broker.receive(.workerDisconnect(worker: Data("w2")), now: 600)
        _ = h.broker.receive(.workerHeartbeat(worker: Data("w1")), now: 2000)
        _ = h.tick(at: 3000)  // w3 silent since 0: dropped; w1 heard at 2000: kept
        _ = h.ready("w1", "backup", at: 3100)
        #expect(
            h.broker.takeMembershipChanges() == [
                .left(service: "inventory", instanceId: "w2-instance", reason: BrokerStateMachine.disconnectedReason),
                .left(service: "storage", instanceId: "w3-instance", reason: "stopped answering heartbeats"),
                .left(service: "inventory", instanceId: "w1-instance", reason: "announced a second service"),
            ])
        #expect(h.broker.status().services.isEmpty)
    }
}

@Suite("Broker: status for Broker/Status")
struct BrokerStatusTests {
    @Test("status() lists services sorted with instances, queued and in-flight counts, and requests routed")
    func statusCounts() {
        var h = Harness()
        _ = h.ready("w1", "inventory", capacity: 1)
        _ = h.ready("w2", "inventory", capacity: 1)
        _ = h.ready("b1", "backup", capacity: 3)
        for id in 1...3 { _ = h.request("c", id: UInt64(id), "inventory") }
        _ = h.request("c", id: 10, "backup")

        let status = h.broker.status()
        #expect(status.services.map(\.name) == ["backup", "inventory"])
        #expect(status.services[0].instances == ["b1-instance"])
        #expect(status.services[0].inFlight == 1)
        #expect(status.services[0].queued == 0)
        #expect(status.services[1].instances == ["w1-instance", "w2-instance"])
        #expect(status.services[1].inFlight == 2)
        #expect(status.services[1].queued == 1)
        #expect(status.requestsRouted == 3)

        _ = h.reply("w1", to: "c", id: 1)
        #expect(h.broker.status().requestsRouted == 4)
        #expect(h.broker.status().services[1].queued == 0)
    }
}
