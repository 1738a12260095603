import Foundation
import Testing

@testable import BackupWorkerService

/// An instant written in ISO 8601 with an explicit offset, e.g. "2024-03-31T03:00:00+02:00".
private func instant(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    guard let date = formatter.date(from: text) else { fatalError("bad test date \(text)") }
    return date
}

private func zone(_ identifier: String) -> TimeZone {
    guard let zone = TimeZone(identifier: identifier) else { fatalError("unknown zone \(identifier)") }
    return zone
}

private let utc = zone("UTC")
private let paris = zone("Europe/Paris")
private let newYork = zone("America/New_York")

private func values(_ set: CronFieldSet) -> [Int] { (0..<64).filter(set.contains) }

/// An expression and the values each field must allow.
struct ParseCase: Sendable, CustomTestStringConvertible {
    var text: String
    var minutes: [Int]? = nil
    var hours: [Int]? = nil
    var daysOfMonth: [Int]? = nil
    var months: [Int]? = nil
    var daysOfWeek: [Int]? = nil

    var testDescription: String { "'\(text)'" }
}

private let parseCases: [ParseCase] = [
    ParseCase(
        text: "* * * * *", minutes: Array(0...59), hours: Array(0...23), daysOfMonth: Array(1...31),
        months: Array(1...12), daysOfWeek: Array(0...6)),
    ParseCase(text: "5 * * * *", minutes: [5]),
    ParseCase(text: "0 0 * * *", minutes: [0], hours: [0]),
    ParseCase(text: "59 23 31 12 6", minutes: [59], hours: [23], daysOfMonth: [31], months: [12], daysOfWeek: [6]),
    ParseCase(text: "1-5 * * * *", minutes: [1, 2, 3, 4, 5]),
    ParseCase(text: "1,3,5 * * * *", minutes: [1, 3, 5]),
    ParseCase(text: "*/15 * * * *", minutes: [0, 15, 30, 45]),
    ParseCase(text: "10-30/10 * * * *", minutes: [10, 20, 30]),
    ParseCase(text: "50/5 * * * *", minutes: [50, 55]),
    ParseCase(text: "1,2-4,*/30 * * * *", minutes: [0, 1, 2, 3, 4, 30]),
    ParseCase(text: "0 0-23/6 * * *", hours: [0, 6, 12, 18]),
    ParseCase(text: "0 */7 * * *", hours: [0, 7, 14, 21]),
    ParseCase(text: "0 0 1,15 * *", daysOfMonth: [1, 15]),
    ParseCase(text: "0 0 */10 * *", daysOfMonth: [1, 11, 21, 31]),
    ParseCase(text: "0 0 * 2 *", months: [2]),
    ParseCase(text: "0 0 * JAN,mar,Dec *", months: [1, 3, 12]),
    ParseCase(text: "0 0 * jan-MAR *", months: [1, 2, 3]),
    ParseCase(text: "0 0 * */3 *", months: [1, 4, 7, 10]),
    ParseCase(text: "0 0 * FEB-dec/5 *", months: [2, 7, 12]),
    ParseCase(text: "0 0 * * MON-FRI", daysOfWeek: [1, 2, 3, 4, 5]),
    ParseCase(text: "0 0 * * sun,SAT", daysOfWeek: [0, 6]),
    ParseCase(text: "0 0 * * Wed", daysOfWeek: [3]),
    ParseCase(text: "0 0 * * 7", daysOfWeek: [0]),
    ParseCase(text: "0 0 * * 0", daysOfWeek: [0]),
    ParseCase(text: "0 0 * * 5-7", daysOfWeek: [0, 5, 6]),
    ParseCase(text: "0 0 * * 0-7", daysOfWeek: [0, 1, 2, 3, 4, 5, 6]),
    ParseCase(text: "0 0 * * */2", daysOfWeek: [0, 2, 4, 6]),
    ParseCase(text: "0 0 * * 1/2", daysOfWeek: [1, 3, 5, 0]),
    ParseCase(text: "  0\t2  * *   0 \n", minutes: [0], hours: [2], daysOfWeek: [0]),
]

/// A refused expression and exactly what the refusal says.
struct BadCron: Sendable, CustomTestStringConvertible {
    var text: String
    var field: String?
    var message: String

    var testDescription: String { "'\(text)'" }
}

private let fieldCount = "expected 5 fields (minute hour day-of-month month day-of-week), got"

private let badCases: [BadCron] = [
    BadCron(text: "", field: nil, message: "\(fieldCount) 0"),
    BadCron(text: "* * * *", field: nil, message: "\(fieldCount) 4"),
    BadCron(text: "* * * * * *", field: nil, message: "\(fieldCount) 6"),
    BadCron(
        text: "@reboot", field: nil,
        message: "unknown macro @reboot (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight "
            + "or @hourly)"),
    BadCron(text: "60 * * * *", field: "minute", message: "minute: 60 is out of range 0-59"),
    BadCron(text: "* 24 * * *", field: "hour", message: "hour: 24 is out of range 0-23"),
    BadCron(text: "* * 0 * *", field: "day of month", message: "day of month: 0 is out of range 1-31"),
    BadCron(text: "* * 32 * *", field: "day of month", message: "day of month: 32 is out of range 1-31"),
    BadCron(text: "* * * 0 *", field: "month", message: "month: 0 is out of range 1-12"),
    BadCron(text: "* * * 13 *", field: "month", message: "month: 13 is out of range 1-12"),
    BadCron(text: "* * * * 8", field: "day of week", message: "day of week: 8 is out of range 0-7"),
    BadCron(
        text: "99999999999999999999 * * * *", field: "minute",
        message: "minute: 99999999999999999999 is out of range 0-59"),
    BadCron(text: "x * * * *", field: "minute", message: "minute: 'x' is not a number"),
    BadCron(text: "1.5 * * * *", field: "minute", message: "minute: '1.5' is not a number"),
    BadCron(text: "\u{FF12} * * * *", field: "minute", message: "minute: '\u{FF12}' is not a number"),
    BadCron(text: "MON * * * *", field: "minute", message: "minute: 'MON' is not a number"),
    BadCron(text: "* JAN * * *", field: "hour", message: "hour: 'JAN' is not a number"),
    BadCron(
        text: "* * * FOO *", field: "month", message: "month: 'FOO' is not a number or a month name (JAN-DEC)"),
    BadCron(
        text: "* * * JANUARY *", field: "month",
        message: "month: 'JANUARY' is not a number or a month name (JAN-DEC)"),
    BadCron(
        text: "* * * * FUN", field: "day of week",
        message: "day of week: 'FUN' is not a number or a day name (SUN-SAT)"),
    BadCron(text: "5-1 * * * *", field: "minute", message: "minute: range 5-1 is reversed (5 > 1)"),
    BadCron(text: "* * * * FRI-MON", field: "day of week", message: "day of week: range FRI-MON is reversed (5 > 1)"),
    BadCron(text: "1- * * * *", field: "minute", message: "minute: '1-' is not a valid range"),
    BadCron(text: "-1 * * * *", field: "minute", message: "minute: '-1' is not a valid range"),
    BadCron(text: "1-2-3 * * * *", field: "minute", message: "minute: '2-3' is not a number"),
    BadCron(text: "* 1-30 * * *", field: "hour", message: "hour: 30 is out of range 0-23"),
    BadCron(text: "*/0 * * * *", field: "minute", message: "minute: step 0 in '*/0' is out of range 1-59"),
    BadCron(text: "*/60 * * * *", field: "minute", message: "minute: step 60 in '*/60' is out of range 1-59"),
    BadCron(text: "*/x * * * *", field: "minute", message: "minute: step 'x' in '*/x' is not a number"),
    BadCron(text: "*/ * * * *", field: "minute", message: "minute: step '' in '*/' is not a number"),
    BadCron(text: "1/2/3 * * * *", field: "minute", message: "minute: step '2/3' in '1/2/3' is not a number"),
    BadCron(text: "1,,2 * * * *", field: "minute", message: "minute: empty list item in '1,,2'"),
    BadCron(text: "* 1, * * *", field: "hour", message: "hour: empty list item in '1,'"),
]

@Suite("Cron expressions: parsing")
struct CronParsingTests {
    @Test("every syntax element parses to the right values", arguments: parseCases)
    func parses(_ c: ParseCase) throws {
        let cron = try CronExpression(c.text)
        if let minutes = c.minutes { #expect(values(cron.minutes) == minutes) }
        if let hours = c.hours { #expect(values(cron.hours) == hours) }
        if let days = c.daysOfMonth { #expect(values(cron.daysOfMonth) == days) }
        if let months = c.months { #expect(values(cron.months) == months) }
        if let days = c.daysOfWeek { #expect(values(cron.daysOfWeek) == days.sorted()) }
    }

    @Test("a bad expression is refused naming the field and the token", arguments: badCases)
    func refuses(_ c: BadCron) {
        #expect {
            _ = try CronExpression(c.text)
        } throws: { error in
            guard let error = error as? CronError else { return false }
            return error.field == c.field && error.message == c.message && error.description == c.message
        }
    }

    @Test(
        "macros expand to their five fields",
        arguments: [
            ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
            ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *"), (" @Weekly ", "0 0 * * 0"),
        ])
    func macros(_ macro: String, _ fields: String) throws {
        #expect(try CronExpression(macro) == CronExpression(fields))
    }

    @Test("equality compares fire times, description keeps the text")
    func equalityAndDescription() throws {
        #expect(try CronExpression("0 0 * * 7") == CronExpression("0 0 * * SUN"))
        #expect(try CronExpression("0-59 * * * *") == CronExpression("* * * * *"))
        #expect(try CronExpression("0 0 13 * *") != CronExpression("0 0 13 * 0-6"))
        #expect(try CronExpression(" @daily ").description == "@daily")
        #expect(try CronExpression("0 2 * * 0").description == "0 2 * * 0")
    }

    @Test("the default schedule is weekly, Sunday 02:00 (B4)")
    func defaultWeekly() throws {
        let cron = try CronExpression(CronExpression.defaultWeekly)
        #expect(cron == (try CronExpression("0 2 * * SUN")))
        // Friday 2024-05-10 → Sunday 2024-05-12 02:00.
        #expect(cron.nextFire(after: instant("2024-05-10T12:00:00Z"), in: utc) == instant("2024-05-12T02:00:00Z"))
    }
}

/// A schedule, a start and the next fire time expected (UTC unless the zone says otherwise).
struct NextCase: Sendable, CustomTestStringConvertible {
    var cron: String
    var after: String
    var expected: String?
    var zone: String = "UTC"

    var testDescription: String { "'\(cron)' after \(after) in \(zone)" }
}

private let nextCases: [NextCase] = [
    NextCase(cron: "* * * * *", after: "2024-05-10T10:07:30Z", expected: "2024-05-10T10:08:00Z"),
    NextCase(cron: "* * * * *", after: "2024-05-10T10:07:00Z", expected: "2024-05-10T10:08:00Z"),
    NextCase(cron: "*/15 * * * *", after: "2024-05-10T10:07:30Z", expected: "2024-05-10T10:15:00Z"),
    NextCase(cron: "*/15 * * * *", after: "2024-05-10T10:14:59Z", expected: "2024-05-10T10:15:00Z"),
    NextCase(cron: "*/15 * * * *", after: "2024-05-10T23:50:00Z", expected: "2024-05-11T00:00:00Z"),
    NextCase(cron: "0 * * * *", after: "2024-05-10T10:00:00Z", expected: "2024-05-10T11:00:00Z"),
    NextCase(cron: "@hourly", after: "2024-12-31T23:30:00Z", expected: "2025-01-01T00:00:00Z"),
    NextCase(cron: "@daily", after: "2024-02-28T00:00:00Z", expected: "2024-02-29T00:00:00Z"),
    NextCase(cron: "0 2 * * 0", after: "2024-05-12T02:00:00Z", expected: "2024-05-19T02:00:00Z"),
    NextCase(cron: "0 2 * * 0", after: "2024-05-12T01:59:59Z", expected: "2024-05-12T02:00:00Z"),
    NextCase(cron: "0 9 * * MON-FRI", after: "2024-05-10T09:00:00Z", expected: "2024-05-13T09:00:00Z"),
    NextCase(cron: "30 4 1,15 * *", after: "2024-01-15T04:30:00Z", expected: "2024-02-01T04:30:00Z"),
    NextCase(cron: "@monthly", after: "2024-12-15T00:00:00Z", expected: "2025-01-01T00:00:00Z"),
    NextCase(cron: "0 0 31 * *", after: "2024-01-31T00:00:00Z", expected: "2024-03-31T00:00:00Z"),
    NextCase(cron: "@yearly", after: "2024-06-01T00:00:00Z", expected: "2025-01-01T00:00:00Z"),
    NextCase(cron: "59 23 31 12 *", after: "2024-12-31T23:59:00Z", expected: "2025-12-31T23:59:00Z"),
    NextCase(cron: "0 0 29 2 *", after: "2025-03-01T00:00:00Z", expected: "2028-02-29T00:00:00Z"),
    NextCase(cron: "0 12 * 6 *", after: "2024-06-30T12:00:00Z", expected: "2025-06-01T12:00:00Z"),
    // Zones: the schedule is local wall-clock time.
    NextCase(cron: "0 2 * * 0", after: "2024-05-10T12:00:00Z", expected: "2024-05-12T00:00:00Z", zone: "Europe/Paris"),
    NextCase(cron: "0 2 * * 0", after: "2024-01-10T12:00:00Z", expected: "2024-01-14T01:00:00Z", zone: "Europe/Paris"),
    NextCase(
        cron: "0 0 1 * *", after: "2024-01-15T00:00:00Z", expected: "2024-02-01T05:00:00Z", zone: "America/New_York"),
    NextCase(cron: "0 0 * * *", after: "2024-01-01T00:00:00Z", expected: "2024-01-01T18:30:00Z", zone: "Asia/Kolkata"),
    // Never within five years.
    NextCase(cron: "0 0 30 2 *", after: "2024-01-01T00:00:00Z", expected: nil),
    NextCase(cron: "0 0 31 4 *", after: "2024-01-01T00:00:00Z", expected: nil),
    NextCase(cron: "0 0 31 2,4,6,9,11 *", after: "2024-01-01T00:00:00Z", expected: nil, zone: "Europe/Paris"),
]

@Suite("Cron expressions: next fire time")
struct CronNextFireTests {
    @Test("common schedules", arguments: nextCases)
    func next(_ c: NextCase) throws {
        let cron = try CronExpression(c.cron)
        #expect(cron.nextFire(after: instant(c.after), in: zone(c.zone)) == c.expected.map(instant))
    }

    @Test("both day fields restricted: a day matches if either matches (Vixie OR)")
    func dayOfMonthOrDayOfWeek() throws {
        // Every 13th and every Friday.
        let cron = try CronExpression("0 0 13 * 5")
        let fires = cron.fires(
            between: instant("2024-09-01T00:00:00Z"), and: instant("2024-10-14T00:00:00Z"), in: utc, limit: 100)
        #expect(
            fires
                == [
                    "2024-09-06", "2024-09-13", "2024-09-20", "2024-09-27", "2024-10-04", "2024-10-11",
                    "2024-10-13",
                ].map { instant($0 + "T00:00:00Z") })
    }

    @Test("a day field starting with '*' makes both fields required (Vixie AND)")
    func starredDayField() throws {
        // Odd days that are Fridays.
        let cron = try CronExpression("0 0 */2 * FRI")
        let fires = cron.fires(
            between: instant("2024-09-01T00:00:00Z"), and: instant("2024-10-31T00:00:00Z"), in: utc, limit: 100)
        #expect(fires == ["2024-09-13", "2024-09-27", "2024-10-11", "2024-10-25"].map { instant($0 + "T00:00:00Z") })
        // Only one field restricted: just that one.
        let thirteenth = try CronExpression("0 0 13 * *")
        #expect(
            thirteenth.fires(
                between: instant("2024-09-01T00:00:00Z"), and: instant("2024-10-31T00:00:00Z"), in: utc, limit: 100)
                == ["2024-09-13", "2024-10-13"].map { instant($0 + "T00:00:00Z") })
    }

    @Test("an impossible schedule gives up (no next fire), skipping by field")
    func impossibleIsFast() throws {
        let cron = try CronExpression("* * 31 2 *")
        for _ in 0..<20 { #expect(cron.nextFire(after: instant("2024-01-01T00:00:00Z"), in: paris) == nil) }
        // A sparse schedule far away is found without minute-by-minute iteration either.
        let leap = try CronExpression("59 23 29 2 *")
        #expect(leap.nextFire(after: instant("2024-03-01T00:00:00Z"), in: utc) == instant("2028-02-29T23:59:00Z"))
    }

    @Test("fires(between:) is (start, end] and honours the limit")
    func firesBetween() throws {
        let cron = try CronExpression("0 * * * *")
        let start = instant("2024-05-10T10:00:00Z")
        let end = instant("2024-05-10T13:00:00Z")
        #expect(
            cron.fires(between: start, and: end, in: utc, limit: 10)
                == ["11", "12", "13"].map { instant("2024-05-10T\($0):00:00Z") })
        #expect(cron.fires(between: start, and: end, in: utc, limit: 2).count == 2)
        #expect(cron.fires(between: start, and: end, in: utc, limit: 0).isEmpty)
        #expect(cron.fires(between: end, and: start, in: utc, limit: 10).isEmpty)
    }

    @Test("nextFire agrees with a minute-by-minute search (zones without DST)", arguments: ["UTC", "Asia/Kolkata"])
    func agreesWithBruteForce(_ zoneName: String) throws {
        let timeZone = zone(zoneName)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let expressions = [
            "*/7 3-5 * * *", "15 */5 1-3,28-31 * *", "0 0 13 * 5", "0 0 */2 * FRI", "5 4 * FEB,MAR MON-WED",
            "0 22 29-31 * 0,6", "*/20 */11 * * *",
        ]
        let start = instant("2024-01-27T00:00:00Z")
        for text in expressions {
            let cron = try CronExpression(text)
            var expected: [Date] = []
            for minute in 1...(40 * 1440) {
                let date = start.addingTimeInterval(Double(minute * 60))
                let c = calendar.dateComponents([.minute, .hour, .day, .month, .weekday], from: date)
                let dom = cron.daysOfMonth.contains(c.day!)
                let dow = cron.daysOfWeek.contains(c.weekday! - 1)
                let day = cron.dayOfMonthIsStar || cron.dayOfWeekIsStar ? dom && dow : dom || dow
                if cron.minutes.contains(c.minute!) && cron.hours.contains(c.hour!) && cron.months.contains(c.month!)
                    && day
                {
                    expected.append(date)
                }
            }
            let actual = cron.fires(
                between: start, and: start.addingTimeInterval(40 * 86_400), in: timeZone, limit: 100_000)
            #expect(actual == expected, "\(text)")
        }
    }

    @Test("previousFire finds the latest fire at or before a time")
    func previousFire() throws {
        let weekly = try CronExpression("0 2 * * 0")
        #expect(
            weekly.previousFire(atOrBefore: instant("2024-05-15T00:00:00Z"), in: utc) == instant("2024-05-12T02:00:00Z")
        )
        #expect(
            weekly.previousFire(atOrBefore: instant("2024-05-12T02:00:00Z"), in: utc) == instant("2024-05-12T02:00:00Z")
        )
        #expect(
            weekly.previousFire(atOrBefore: instant("2024-05-12T01:59:59Z"), in: utc) == instant("2024-05-05T02:00:00Z")
        )
        let impossible = try CronExpression("0 0 30 2 *")
        #expect(impossible.previousFire(atOrBefore: instant("2024-05-12T00:00:00Z"), in: utc) == nil)
    }
}

@Suite("Cron expressions: daylight saving time")
struct CronDaylightSavingTests {
    @Test("Paris spring forward: 02:30 does not exist on 2024-03-31 and fires once at 03:00 CEST")
    func parisSpringForward() throws {
        let cron = try CronExpression("30 2 * * *")
        let fires = cron.fires(
            between: instant("2024-03-29T12:00:00Z"), and: instant("2024-04-01T12:00:00Z"), in: paris, limit: 10)
        #expect(
            fires == [
                instant("2024-03-30T02:30:00+01:00"),
                instant("2024-03-31T03:00:00+02:00"),
                instant("2024-04-01T02:30:00+02:00"),
            ])
    }

    @Test("Paris fall back: 02:30 occurs twice on 2024-10-27 and fires once, the first time")
    func parisFallBack() throws {
        let cron = try CronExpression("30 2 * * *")
        let fires = cron.fires(
            between: instant("2024-10-26T12:00:00Z"), and: instant("2024-10-28T12:00:00Z"), in: paris, limit: 10)
        #expect(fires == [instant("2024-10-27T02:30:00+02:00"), instant("2024-10-28T02:30:00+01:00")])
        // Asked from inside the repeated hour, it waits for the next day.
        #expect(
            cron.nextFire(after: instant("2024-10-27T02:10:00+01:00"), in: paris)
                == instant("2024-10-28T02:30:00+01:00"))
    }

    @Test("New York spring forward: 02:30 on 2024-03-10 fires once at 03:00 EDT")
    func newYorkSpringForward() throws {
        let cron = try CronExpression("30 2 * * *")
        let fires = cron.fires(
            between: instant("2024-03-09T12:00:00Z"), and: instant("2024-03-11T12:00:00Z"), in: newYork, limit: 10)
        #expect(fires == [instant("2024-03-10T03:00:00-04:00"), instant("2024-03-11T02:30:00-04:00")])
    }

    @Test("New York fall back: 01:30 on 2024-11-03 fires once, at 01:30 EDT")
    func newYorkFallBack() throws {
        let cron = try CronExpression("30 1 * * *")
        let fires = cron.fires(
            between: instant("2024-11-02T12:00:00Z"), and: instant("2024-11-04T12:00:00Z"), in: newYork, limit: 10)
        #expect(fires == [instant("2024-11-03T01:30:00-04:00"), instant("2024-11-04T01:30:00-05:00")])
        #expect(
            cron.nextFire(after: instant("2024-11-03T01:30:00-04:00"), in: newYork)
                == instant("2024-11-04T01:30:00-05:00"))
        #expect(
            cron.nextFire(after: instant("2024-11-03T01:00:00-05:00"), in: newYork)
                == instant("2024-11-04T01:30:00-05:00"))
    }

    @Test("hourly across both transitions: the gap fires once, the repeated hour once")
    func hourlyAcrossTransitions() throws {
        let cron = try CronExpression("0 * * * *")
        let spring = cron.fires(
            between: instant("2024-03-10T00:30:00-05:00"), and: instant("2024-03-10T04:30:00-04:00"), in: newYork,
            limit: 10)
        #expect(
            spring == [
                instant("2024-03-10T01:00:00-05:00"), instant("2024-03-10T03:00:00-04:00"),
                instant("2024-03-10T04:00:00-04:00"),
            ])
        let autumn = cron.fires(
            between: instant("2024-11-03T00:30:00-04:00"), and: instant("2024-11-03T03:30:00-05:00"), in: newYork,
            limit: 10)
        #expect(
            autumn == [
                instant("2024-11-03T01:00:00-04:00"), instant("2024-11-03T02:00:00-05:00"),
                instant("2024-11-03T03:00:00-05:00"),
            ])
    }

    @Test("several slots in one gap collapse into one firing")
    func slotsInGapCollapse() throws {
        let cron = try CronExpression("*/15 * * * *")
        let fires = cron.fires(
            between: instant("2024-03-31T01:40:00+01:00"), and: instant("2024-03-31T03:20:00+02:00"), in: paris,
            limit: 10)
        #expect(
            fires == [
                instant("2024-03-31T01:45:00+01:00"), instant("2024-03-31T03:00:00+02:00"),
                instant("2024-03-31T03:15:00+02:00"),
            ])
    }

    @Test("a half-hour DST shift (Lord Howe) and a skipped day (Samoa, 2011-12-30)")
    func unusualTransitions() throws {
        // Lord Howe springs forward from 02:00 to 02:30 on 2024-10-06.
        let quarterPast = try CronExpression("15 2 * * *")
        #expect(
            quarterPast.nextFire(after: instant("2024-10-05T12:00:00+10:30"), in: zone("Australia/Lord_Howe"))
                == instant("2024-10-06T02:30:00+11:00"))
        // Samoa skipped 30 December 2011 entirely: its noon fires at the first instant after the gap.
        let noon = try CronExpression("0 12 30 12 *")
        #expect(
            noon.nextFire(after: instant("2011-12-29T12:00:00-10:00"), in: zone("Pacific/Apia"))
                == instant("2011-12-31T00:00:00+14:00"))
    }

    @Test("previousFire across the repeated hour")
    func previousFireInOverlap() throws {
        let cron = try CronExpression("*/30 * * * *")
        // 01:10 EST (second 01:xx): the last fire was 01:30 EDT, earlier in real time.
        #expect(
            cron.previousFire(atOrBefore: instant("2024-11-03T01:10:00-05:00"), in: newYork)
                == instant("2024-11-03T01:30:00-04:00"))
    }
}

@Suite("Cron expressions: due slots")
struct CronDueSlotTests {
    let weekly: CronExpression
    init() throws { weekly = try CronExpression("0 2 * * 0") }

    @Test("never run, created before a slot: that slot runs", arguments: MissedSlotPolicy.allCases)
    func neverRun(_ policy: MissedSlotPolicy) {
        let due = weekly.dueSlots(
            lastRun: nil, created: instant("2024-05-11T12:00:00Z"), now: instant("2024-05-12T02:00:30Z"), in: utc,
            policy: policy)
        #expect(due.run == instant("2024-05-12T02:00:00Z"))
        #expect(due.next == instant("2024-05-19T02:00:00Z"))
    }

    @Test("three missed slots: only the latest runs, once, with .runOnceNow")
    func threeMissedRunOnce() {
        let lastRun = instant("2024-05-05T02:00:00Z")
        let now = instant("2024-05-27T10:00:00Z")  // slots 12, 19 and 26 May were missed
        let due = weekly.dueSlots(lastRun: lastRun, created: lastRun, now: now, in: utc, policy: .runOnceNow)
        #expect(due.run == instant("2024-05-26T02:00:00Z"))
        #expect(due.next == instant("2024-06-02T02:00:00Z"))
        // Recorded as run: nothing more until the next slot.
        let again = weekly.dueSlots(lastRun: due.run, created: lastRun, now: now, in: utc, policy: .runOnceNow)
        #expect(again.run == nil)
        #expect(again.next == instant("2024-06-02T02:00:00Z"))
    }

    @Test(".skip drops slots older than five minutes and runs a slightly late one")
    func skipPolicy() {
        let lastRun = instant("2024-05-05T02:00:00Z")
        let late = weekly.dueSlots(
            lastRun: lastRun, created: lastRun, now: instant("2024-05-27T10:00:00Z"), in: utc, policy: .skip)
        #expect(late.run == nil)
        #expect(late.next == instant("2024-06-02T02:00:00Z"))
        for (now, runs) in [
            ("2024-05-26T02:04:00Z", true), ("2024-05-26T02:05:00Z", true), ("2024-05-26T02:05:01Z", false),
        ] {
            let due = weekly.dueSlots(lastRun: lastRun, created: lastRun, now: instant(now), in: utc, policy: .skip)
            #expect(due.run == (runs ? instant("2024-05-26T02:00:00Z") : nil), "\(now)")
        }
    }

    @Test("last run is the latest slot: nothing to run", arguments: MissedSlotPolicy.allCases)
    func upToDate(_ policy: MissedSlotPolicy) {
        let due = weekly.dueSlots(
            lastRun: instant("2024-05-26T02:00:00Z"), created: instant("2024-01-01T00:00:00Z"),
            now: instant("2024-05-27T10:00:00Z"), in: utc, policy: policy)
        #expect(due.run == nil)
        #expect(due.next == instant("2024-06-02T02:00:00Z"))
    }

    @Test("slots before the schedule was created never run", arguments: MissedSlotPolicy.allCases)
    func createdAfterSlot(_ policy: MissedSlotPolicy) {
        let due = weekly.dueSlots(
            lastRun: nil, created: instant("2024-05-26T03:00:00Z"), now: instant("2024-05-27T10:00:00Z"), in: utc,
            policy: policy)
        #expect(due.run == nil)
        #expect(due.next == instant("2024-06-02T02:00:00Z"))
        // An old lastRun does not bring back slots from before a schedule change.
        let changed = weekly.dueSlots(
            lastRun: instant("2024-01-07T02:00:00Z"), created: instant("2024-05-26T03:00:00Z"),
            now: instant("2024-05-27T10:00:00Z"), in: utc, policy: policy)
        #expect(changed.run == nil)
    }

    @Test("a last run in the future (clock skew) runs nothing")
    func lastRunInFuture() {
        let due = weekly.dueSlots(
            lastRun: instant("2024-06-30T02:00:00Z"), created: instant("2024-01-01T00:00:00Z"),
            now: instant("2024-05-27T10:00:00Z"), in: utc, policy: .runOnceNow)
        #expect(due.run == nil)
        #expect(due.next == instant("2024-06-02T02:00:00Z"))
    }

    @Test("a slot in a DST gap is due at the first instant after the gap")
    func dueInGap() throws {
        let daily = try CronExpression("30 2 * * *")
        let due = daily.dueSlots(
            lastRun: instant("2024-03-30T02:30:00+01:00"), created: instant("2024-01-01T00:00:00Z"),
            now: instant("2024-03-31T03:00:10+02:00"), in: paris, policy: .skip)
        #expect(due.run == instant("2024-03-31T03:00:00+02:00"))
        #expect(due.next == instant("2024-04-01T02:30:00+02:00"))
    }
}
