import Foundation
import Testing

@testable import BackupWorkerService

private let utc = TimeZone(identifier: "UTC")!
private let paris = TimeZone(identifier: "Europe/Paris")!

/// An instant written in ISO 8601 with an explicit offset.
private func instant(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    guard let date = formatter.date(from: text) else { fatalError("bad test date \(text)") }
    return date
}

/// One good backup a day at 03:00 UTC, from `first` for `count` days, named by date ("2024-01-31").
private func dailyBackups(from first: String, count: Int) -> [RetentionCandidate] {
    let start = instant(first + "T03:00:00Z")
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withFullDate]
    return (0..<count).map { day in
        let created = start.addingTimeInterval(Double(day) * 86_400)
        return RetentionCandidate(id: formatter.string(from: created), created: created, good: true)
    }
}

private func policy(_ last: Int, _ daily: Int, _ weekly: Int, _ monthly: Int) throws -> RetentionPolicy {
    try RetentionPolicy(keepLast: last, keepDaily: daily, keepWeekly: weekly, keepMonthly: monthly)
}

@Suite("Retention: which backups are kept")
struct RetentionTests {
    @Test("40 daily backups: last 3, 5 daily, 2 weekly, 2 monthly")
    func fortyDays() throws {
        // 2024-01-01 (a Monday) to 2024-02-09 (a Friday).
        let backups = dailyBackups(from: "2024-01-01", count: 40)
        let result = try policy(3, 5, 2, 2).select(backups, now: instant("2024-02-09T12:00:00Z"), in: utc)
        // last 3:   Feb 9, 8, 7
        // daily 5:  Feb 9, 8, 7, 6, 5
        // weekly 2: week of Mon Feb 5 → Feb 9; week of Mon Jan 29 → Sun Feb 4
        // monthly 2: February → Feb 9; January → Jan 31
        let keep = ["2024-02-09", "2024-02-08", "2024-02-07", "2024-02-06", "2024-02-05", "2024-02-04", "2024-01-31"]
        #expect(result.keep == keep)
        #expect(result.delete == backups.map(\.id).reversed().filter { !keep.contains($0) })
        #expect(result.delete.count == 33)
    }

    @Test("P16: each backup's decision says why: the rules keeping it, or for each rule why it does not")
    func reasons() throws {
        var backups = dailyBackups(from: "2024-01-01", count: 40)
        backups[30].good = false  // 2024-01-31, damaged
        let decisions = try policy(3, 5, 2, 2).decide(backups, now: instant("2024-02-09T12:00:00Z"), in: utc)
        let byId = Dictionary(uniqueKeysWithValues: decisions.map { ($0.id, $0) })
        #expect(decisions.map(\.id) == backups.map(\.id).reversed())
        #expect(byId["2024-02-09"]?.reasons == ["last 3 (1st newest)", "daily 2024-02-09", "weekly 2024-W06", "monthly 2024-02"])
        #expect(byId["2024-02-06"]?.reasons == ["daily 2024-02-06"])
        #expect(byId["2024-02-04"]?.reasons == ["weekly 2024-W05"])
        // January's representative is the newest good one: the 30th, as the 31st is damaged.
        #expect(byId["2024-01-30"]?.reasons == ["monthly 2024-01"])
        let damaged = try #require(byId["2024-01-31"])
        #expect(!damaged.keep && damaged.reasons.contains("daily: damaged, it represents no period"))
        let old = try #require(byId["2024-01-02"])
        #expect(!old.keep)
        #expect(old.reasons == [
            "not among the last 3", "daily: 2024-01-02 is past the 5 most recent with a good backup",
            "weekly: 2024-W01 is past the 2 most recent with a good backup", "monthly 2024-01 keeps a newer one (2024-01-30)",
        ])
        #expect(try policy(3, 5, 2, 2).select(backups, now: instant("2024-02-09T12:00:00Z"), in: utc).keep
            == decisions.filter(\.keep).map(\.id))
        #expect(RetentionPolicy.ordinal(1) == "1st" && RetentionPolicy.ordinal(12) == "12th" && RetentionPolicy.ordinal(22) == "22nd")
    }

    @Test("a year of daily backups with the default policy")
    func yearWithDefaultPolicy() {
        let backups = dailyBackups(from: "2024-01-01", count: 366)  // all of 2024
        let result = RetentionPolicy.default.select(backups.shuffled(), now: instant("2024-12-31T12:00:00Z"), in: utc)
        // last 10: Dec 31 ... Dec 22 (daily 7 lies within them).
        // weekly 4: Mon Dec 30 → Dec 31, Mon Dec 23 → Dec 29, Mon Dec 16 → Dec 22, Mon Dec 9 → Dec 15.
        // monthly 6: Dec 31, Nov 30, Oct 31, Sep 30, Aug 31, Jul 31.
        let lastTen = (22...31).reversed().map { "2024-12-\($0)" }
        #expect(
            result.keep == lastTen + [
                "2024-12-15", "2024-11-30", "2024-10-31", "2024-09-30", "2024-08-31", "2024-07-31",
            ])
        #expect(result.keep.count + result.delete.count == 366)
        #expect(Set(result.keep).isDisjoint(with: result.delete))
    }

    @Test("periods are computed in the given time zone")
    func periodsInTimeZone() throws {
        let backups = [
            RetentionCandidate(id: "a", created: instant("2024-01-30T23:30:00Z"), good: true),
            RetentionCandidate(id: "b", created: instant("2024-01-31T23:30:00Z"), good: true),  // Feb 1 in Paris
            RetentionCandidate(id: "c", created: instant("2024-02-10T12:00:00Z"), good: true),
        ]
        let monthly = try policy(1, 0, 0, 2)
        let now = instant("2024-02-10T13:00:00Z")
        #expect(monthly.select(backups, now: now, in: utc) == (keep: ["c", "b"], delete: ["a"]))
        #expect(monthly.select(backups, now: now, in: paris) == (keep: ["c", "a"], delete: ["b"]))
    }

    @Test("the newest good backup is kept even when a newer damaged one fills keepLast")
    func newestGoodKept() throws {
        let backups = [
            RetentionCandidate(id: "damaged", created: instant("2024-05-10T03:00:00Z"), good: false),
            RetentionCandidate(id: "good", created: instant("2024-05-09T03:00:00Z"), good: true),
            RetentionCandidate(id: "older", created: instant("2024-05-08T03:00:00Z"), good: true),
        ]
        let result = try policy(1, 0, 0, 0).select(backups, now: instant("2024-05-10T12:00:00Z"), in: utc)
        #expect(result.keep == ["damaged", "good"])
        #expect(result.delete == ["older"])
    }

    @Test("a damaged backup never represents its period")
    func damagedNeverRepresents() throws {
        let backups = [
            RetentionCandidate(id: "today-damaged", created: instant("2024-05-10T09:00:00Z"), good: false),
            RetentionCandidate(id: "today-good", created: instant("2024-05-10T03:00:00Z"), good: true),
            RetentionCandidate(id: "yesterday-damaged", created: instant("2024-05-09T03:00:00Z"), good: false),
            RetentionCandidate(id: "two-days-ago", created: instant("2024-05-08T03:00:00Z"), good: true),
            RetentionCandidate(id: "three-days-ago", created: instant("2024-05-07T03:00:00Z"), good: true),
        ]
        // Two days with a good backup: May 10 and May 8 (May 9 has none).
        let result = try policy(1, 2, 0, 0).select(backups, now: instant("2024-05-10T12:00:00Z"), in: utc)
        #expect(result.keep == ["today-damaged", "today-good", "two-days-ago"])
        #expect(result.delete == ["yesterday-damaged", "three-days-ago"])
    }

    @Test("backups newer than now (clock skew) are kept and do not use up keepLast")
    func futureKept() throws {
        let backups = [
            RetentionCandidate(id: "future-2", created: instant("2024-05-12T03:00:00Z"), good: true),
            RetentionCandidate(id: "future-1", created: instant("2024-05-11T03:00:00Z"), good: false),
            RetentionCandidate(id: "now", created: instant("2024-05-10T03:00:00Z"), good: true),
            RetentionCandidate(id: "old", created: instant("2024-05-09T03:00:00Z"), good: true),
        ]
        let result = try policy(1, 0, 0, 0).select(backups, now: instant("2024-05-10T12:00:00Z"), in: utc)
        #expect(result.keep == ["future-2", "future-1", "now"])
        #expect(result.delete == ["old"])
    }

    @Test(
        "a single backup is never deleted",
        arguments: [true, false], ["2024-05-10T03:00:00Z", "2024-06-10T03:00:00Z", "2020-01-01T00:00:00Z"])
    func singleBackup(good: Bool, created: String) throws {
        let backup = RetentionCandidate(id: "only", created: instant(created), good: good)
        for candidatePolicy in [RetentionPolicy.default, try policy(1, 0, 0, 0)] {
            let result = candidatePolicy.select([backup], now: instant("2024-05-10T12:00:00Z"), in: utc)
            #expect(result.keep == ["only"])
            #expect(result.delete.isEmpty)
        }
    }

    @Test("no backups: nothing to do")
    func empty() {
        let result = RetentionPolicy.default.select([], now: instant("2024-05-10T12:00:00Z"), in: utc)
        #expect(result.keep.isEmpty && result.delete.isEmpty)
    }

    @Test("equal creation times are ordered by id, whatever the input order")
    func tiesAreStable() throws {
        let created = instant("2024-05-10T03:00:00Z")
        let backups = ["b", "a", "d", "c"].map { RetentionCandidate(id: $0, created: created, good: true) }
        let lastTwo = try policy(2, 0, 0, 0)
        let now = instant("2024-05-10T12:00:00Z")
        for _ in 0..<20 {
            #expect(lastTwo.select(backups.shuffled(), now: now, in: utc) == (keep: ["d", "c"], delete: ["b", "a"]))
        }
        // The period representative is the greatest id too.
        let daily = try policy(1, 1, 1, 1)
        for _ in 0..<20 {
            #expect(daily.select(backups.shuffled(), now: now, in: utc).keep == ["d"])
        }
    }
}

@Suite("Retention: policy values")
struct RetentionPolicyTests {
    @Test("the default policy")
    func defaults() {
        let policy = RetentionPolicy.default
        #expect(policy.keepLast == 10 && policy.keepDaily == 7 && policy.keepWeekly == 4 && policy.keepMonthly == 6)
    }

    @Test(
        "invalid numbers are refused",
        arguments: [
            ((0, 7, 4, 6), "keepLast must be at least 1, got 0"),
            ((-1, 7, 4, 6), "keepLast must be at least 1, got -1"),
            ((1, -1, 4, 6), "keepDaily must be at least 0, got -1"),
            ((1, 0, -2, 6), "keepWeekly must be at least 0, got -2"),
            ((1, 0, 0, -3), "keepMonthly must be at least 0, got -3"),
        ])
    func refused(_ numbers: (Int, Int, Int, Int), _ message: String) {
        #expect(throws: RetentionPolicyError(message: message)) {
            try RetentionPolicy(
                keepLast: numbers.0, keepDaily: numbers.1, keepWeekly: numbers.2, keepMonthly: numbers.3)
        }
    }

    @Test("a policy round-trips through JSON, and decoding validates")
    func codable() throws {
        let policy = try policy(3, 0, 2, 12)
        let data = try JSONEncoder().encode(policy)
        #expect(try JSONDecoder().decode(RetentionPolicy.self, from: data) == policy)
        let bad = Data(#"{"keepLast":0,"keepDaily":1,"keepWeekly":1,"keepMonthly":1}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(RetentionPolicy.self, from: bad) }
    }
}
