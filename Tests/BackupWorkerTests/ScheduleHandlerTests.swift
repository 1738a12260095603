import Logging
import Postgres
import RampartAPI
import RampartBus
import RampartProto
import RampartTesting
import Testing

@testable import BackupWorkerService

private typealias Schedule = Rampart_Backup_V1_Schedule

/// A schedule every check accepts: weekly, in Paris, for one device.
private func goodSchedule() -> Schedule {
    var schedule = Schedule()
    schedule.name = "weekly-edge"
    schedule.cron = "0 2 * * 0"
    schedule.timeZone = "Europe/Paris"
    var target = Rampart_Backup_V1_Target()
    target.kind = .device
    target.ref = "fw-edge-01"
    schedule.targets = [target]
    return schedule
}

private func create(_ schedule: Schedule) -> Rampart_Backup_V1_CreateScheduleRequest {
    var request = Rampart_Backup_V1_CreateScheduleRequest()
    request.schedule = schedule
    return request
}

@Suite("Backup: schedule requests, handlers called in-process (B4)")
struct ScheduleHandlerTests {
    /// The backup API over a closed pool and a closed bus client: a handler that reached the database
    /// or inventory would answer with their failure, not with its own refusal.
    static func tester() async -> RouterTester {
        let logger = Logger(label: "schedule-handler-tests")
        let pool = PostgresPool(connectionString: "dbname=never-opened", size: 1, logger: logger)
        await pool.close()
        let client = BusClient(
            endpoint: "inproc://nobody", security: .plain, caller: "schedule-handler-tests", logger: logger)
        client.close()
        let pruner = Pruner(pool: pool, client: client, policy: .default, logger: logger)
        return RouterTester(BackupService(pool: pool, client: client, pruner: pruner).router())
    }

    @Test(
        "B4: CreateSchedule refuses a bad name, a bad cron, an unknown time zone, a cron that never fires and no targets with INVALID_ARGUMENT before it asks the database or inventory; each refusal is audited (P9)"
    )
    func createRefusals() async throws {
        let tester = await Self.tester()
        var badName = goodSchedule()
        badName.name = "weekly edge!"
        var badCron = goodSchedule()
        badCron.cron = "0 25 * * *"
        var badZone = goodSchedule()
        badZone.timeZone = "Europe/Atlantis"
        var neverFires = goodSchedule()
        neverFires.cron = "0 2 30 2 *"
        var noTargets = goodSchedule()
        noTargets.targets = []
        let cases: [(Schedule, String)] = [
            (badName, "schedule name"), (badCron, "cron '0 25 * * *'"), (badZone, "unknown time zone 'Europe/Atlantis'"),
            (neverFires, "never fires"), (noTargets, "at least one target"),
        ]
        for (schedule, words) in cases {
            let error = await tester.failure(BackupAPI.createSchedule, create(schedule), as: .operator)
            #expect(error?.code == .invalidArgument, "\(schedule.name) \(schedule.cron) \(schedule.timeZone)")
            #expect(error?.message.contains(words) == true, "\(error?.message ?? "no error"): should say '\(words)'")
        }
        let refusals = Array(repeating: Rampart_Bus_V1_StatusCode.invalidArgument, count: cases.count)
        #expect(tester.audited.map(\.outcome) == refusals)
        #expect(tester.audited.allSatisfy { $0.caller.name == "tester" && $0.caller.role == .operator })
        // A good schedule gets past every check and on to inventory, here a closed client.
        let passed = await tester.failure(BackupAPI.createSchedule, create(goodSchedule()), as: .operator)
        #expect(passed?.code == .cancelled)
    }

    @Test("P7: a viewer may not create a schedule: PERMISSION_DENIED before the handler, the refusal audited")
    func viewerRefused() async throws {
        let tester = await Self.tester()
        var bad = goodSchedule()
        bad.cron = "not a cron"
        // Refused for the role, not for the cron: the handler never ran.
        let error = await tester.failure(BackupAPI.createSchedule, create(bad), as: .viewer, name: "vera")
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("vera") == true)
        #expect(tester.audited.map(\.outcome) == [.permissionDenied])
    }
}
