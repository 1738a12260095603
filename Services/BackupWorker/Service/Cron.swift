import Foundation

// Cron schedules for scheduled backups (rule B4). Pure logic: no clock, no I/O. The
// scheduler passes the current time in; every computation happens on local wall-clock time of
// the given time zone, and is mapped to instants with explicit rules for DST gaps and overlaps.

/// A refused cron expression: which field, which token, and a sentence for people.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field the bad token belongs to ("minute", "hour", "day of month", "month",
    /// "day of week"), or nil when the expression as a whole is wrong (field count, macro).
    public let field: String?
    /// The offending token as written.
    public let token: String
    /// What is wrong, for people: "hour: 24 is out of range 0-23".
    public let message: String

    /// Makes an error; `message` is the whole sentence shown to people.
    public init(field: String?, token: String, message: String) {
        self.field = field
        self.token = token
        self.message = message
    }

    /// The message for people.
    public var description: String { message }
}

/// What the scheduler does with slots that passed while it was not running (worker down, machine
/// asleep, schedule just changed).
///
/// Policy, as applied by ``CronExpression/dueSlots(lastRun:created:now:in:policy:)``:
/// - Only slots after both the last run and the schedule's creation count as missed: a new
///   schedule never runs for slots before it existed.
/// - `.runOnceNow`: if any slot was missed, the most recent one runs once, now. Missing three
///   weekly slots yields one backup, never a burst of three.
/// - `.skip`: missed slots are dropped, except a slot at most five minutes old (the normal case
///   of a scheduler tick arriving slightly late), which runs.
public enum MissedSlotPolicy: Sendable, Equatable, CaseIterable {
    /// Run the most recent missed slot once, now.
    case runOnceNow
    /// Drop missed slots older than five minutes.
    case skip
}

/// A standard five-field cron expression (minute, hour, day of month, month, day of week) with
/// Vixie-cron semantics, and the computation of its fire times in a time zone.
///
/// Syntax, per field: `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to
/// the field's maximum), and comma-separated lists of these. Months may be written `JAN`-`DEC`,
/// days of week `SUN`-`SAT` (case-insensitive); day of week 0 and 7 are both Sunday. The macros
/// `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly` stand for
/// their usual five fields.
///
/// Day of month and day of week (Vixie cron): when both fields are restricted, a day matches if
/// either matches ("0 0 13 * 5" fires on every 13th and on every Friday). As in Vixie cron, a
/// field counts as unrestricted when its text starts with `*` (so `*/2` is unrestricted), and then
/// both fields must match.
///
/// Time zones and daylight saving time: schedules are read in local wall-clock time.
/// - A local time that does not exist (spring-forward gap, e.g. 02:30 when clocks jump from 02:00
///   to 03:00) fires once at the first valid instant after the gap (03:00 local), as cronie does.
///   Several slots falling in the same gap collapse into that one firing.
/// - A local time that occurs twice (fall-back overlap, e.g. 01:30 when clocks go from 02:00 back
///   to 01:00) fires once, at its first occurrence. This also holds for hourly or per-minute
///   schedules: the repeated hour is not fired a second time.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    /// The default schedule of a fresh installation (rule B4): a configuration-only backup
    /// every week, Sunday at 02:00 in the installation's time zone. Operators review and change it.
    public static let defaultWeekly = "0 2 * * 0"

    /// How far ``nextFire(after:in:)`` and the missed-slot search look before giving up.
    static let horizonYears = 5

    let minutes: CronFieldSet
    let hours: CronFieldSet
    let daysOfMonth: CronFieldSet
    let months: CronFieldSet
    /// Days of week, 0 = Sunday ... 6 = Saturday (7 is folded into 0).
    let daysOfWeek: CronFieldSet
    /// The day-of-month field starts with `*` (Vixie `DOM_STAR`).
    let dayOfMonthIsStar: Bool
    /// The day-of-week field starts with `*` (Vixie `DOW_STAR`).
    let dayOfWeekIsStar: Bool
    /// The expression as written, trimmed, for ``description``.
    private let text: String

    /// Parses a five-field expression or a macro; throws a ``CronError`` naming the field and the
    /// bad token.
    public init(_ text: String) throws(CronError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if fields.count == 1, let macro = fields.first, macro.hasPrefix("@") {
            guard let expansion = Self.macros[macro.lowercased()] else {
                throw CronError(
                    field: nil, token: macro,
                    message: "unknown macro \(macro) (expected @yearly, @annually, @monthly, @weekly, "
                        + "@daily, @midnight or @hourly)")
            }
            fields = expansion.split(separator: " ").map(String.init)
        }
        guard fields.count == 5 else {
            throw CronError(
                field: nil, token: trimmed,
                message: "expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        minutes = try CronField.minute.parse(fields[0])
        hours = try CronField.hour.parse(fields[1])
        daysOfMonth = try CronField.dayOfMonth.parse(fields[2])
        months = try CronField.month.parse(fields[3])
        var dow = try CronField.dayOfWeek.parse(fields[4])
        if dow.contains(7) {
            dow.insert(0)
            dow.remove(7)
        }
        daysOfWeek = dow
        dayOfMonthIsStar = fields[2].hasPrefix("*")
        dayOfWeekIsStar = fields[4].hasPrefix("*")
        self.text = trimmed
    }

    private static let macros: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// The expression as written (trimmed).
    public var description: String { text }

    /// Two expressions are equal when they fire at the same times, however they are written
    /// ("@daily" equals "0 0 * * *").
    public static func == (lhs: CronExpression, rhs: CronExpression) -> Bool {
        lhs.minutes == rhs.minutes && lhs.hours == rhs.hours && lhs.daysOfMonth == rhs.daysOfMonth
            && lhs.months == rhs.months && lhs.daysOfWeek == rhs.daysOfWeek
            && lhs.dayOfMonthIsStar == rhs.dayOfMonthIsStar && lhs.dayOfWeekIsStar == rhs.dayOfWeekIsStar
    }

    // MARK: Matching days

    /// Whether a local calendar day matches the day-of-month, month and day-of-week fields.
    func dayMatches(_ day: LocalDate) -> Bool {
        guard months.contains(day.month) else { return false }
        let dom = daysOfMonth.contains(day.day)
        let dow = daysOfWeek.contains(day.weekday)
        if dayOfMonthIsStar || dayOfWeekIsStar { return dom && dow }
        return dom || dow
    }

    // MARK: Fire times

    /// The first fire time strictly after `date`, at second 0 of a matching local minute in
    /// `timeZone`, or nil if nothing matches within five years ("0 0 30 2 *" never does).
    ///
    /// Skips by field (month, day, hour, minute) rather than minute by minute. DST rules: see the
    /// type's documentation (gap → first instant after the gap, overlap → first occurrence).
    public func nextFire(after date: Date, in timeZone: TimeZone) -> Date? {
        let zone = ZoneMapper(timeZone)
        let after = date.timeIntervalSince1970
        guard after.isFinite else { return nil }
        var cursor = zone.localMinute(of: after) + 1
        let limit = LocalDateTime(minute: cursor).addingYears(Self.horizonYears)
        while let match = nextLocalMatch(atOrAfter: LocalDateTime(minute: cursor), notAfter: limit) {
            let instant = zone.instant(ofLocalMinute: match.minuteIndex)
            if Double(instant) > after { return Date(timeIntervalSince1970: Double(instant)) }
            // The local time maps to an instant not after `date` (its first occurrence in a
            // fall-back overlap that `date` is already past): try the following minute.
            cursor = match.minuteIndex + 1
        }
        return nil
    }

    /// The fire times in `(start, end]`, in order, at most `limit` of them.
    public func fires(between start: Date, and end: Date, in timeZone: TimeZone, limit: Int) -> [Date] {
        var result: [Date] = []
        var cursor = start
        while result.count < limit, let next = nextFire(after: cursor, in: timeZone), next <= end {
            result.append(next)
            cursor = next
        }
        return result
    }

    /// The latest fire time at or before `date`, or nil if there is none within five years.
    public func previousFire(atOrBefore date: Date, in timeZone: TimeZone) -> Date? {
        let zone = ZoneMapper(timeZone)
        let upper = date.timeIntervalSince1970
        guard upper.isFinite else { return nil }
        var cursor = zone.localMinute(of: upper)
        let limit = LocalDateTime(minute: cursor).addingYears(-Self.horizonYears)
        var found: Int?
        while let match = previousLocalMatch(atOrBefore: LocalDateTime(minute: cursor), notBefore: limit) {
            let instant = zone.instant(ofLocalMinute: match.minuteIndex)
            if Double(instant) <= upper {
                found = instant
                break
            }
            cursor = match.minuteIndex - 1
        }
        // Local time is not monotonic across a fall-back overlap: local minutes later than the
        // local time of `date` may have fired earlier in real time. Walk forward from the match
        // to catch them (a handful of steps, and only around an overlap).
        var best = found.map { Date(timeIntervalSince1970: Double($0)) }
        var forward = best ?? Date(timeIntervalSince1970: upper - 366 * 86_400)
        while let next = nextFire(after: forward, in: timeZone), next <= date {
            best = next
            forward = next
        }
        return best
    }

    /// What the scheduler should run now, and when to wake up next.
    ///
    /// - Parameters:
    ///   - lastRun: the slot (or start time) of the last run of this schedule; nil if it never ran.
    ///   - created: when the schedule was created or last changed; slots before it never run.
    ///   - now: the current time, from the injected clock.
    ///   - timeZone: the zone the schedule is written in.
    ///   - policy: what to do with missed slots (see ``MissedSlotPolicy``).
    /// - Returns: `run`, the slot to run now: the most recent slot in `(max(lastRun, created), now]`
    ///   if there is one and the policy allows it (with `.runOnceNow` always, however many slots
    ///   were missed; with `.skip` only if it is at most five minutes old); `next`, the first slot
    ///   strictly after `now`. The caller records `run` as the new `lastRun`, so asking again
    ///   returns no slot to run until `next` has passed.
    public func dueSlots(
        lastRun: Date?, created: Date, now: Date, in timeZone: TimeZone, policy: MissedSlotPolicy
    ) -> (run: Date?, next: Date?) {
        let next = nextFire(after: now, in: timeZone)
        let since = max(lastRun ?? created, created)
        guard since < now, let latest = previousFire(atOrBefore: now, in: timeZone), latest > since else {
            return (nil, next)
        }
        switch policy {
        case .runOnceNow:
            return (latest, next)
        case .skip:
            return (now.timeIntervalSince(latest) <= Self.skipGrace ? latest : nil, next)
        }
    }

    /// With ``MissedSlotPolicy/skip``, how late a slot may still run (five minutes).
    static let skipGrace: TimeInterval = 5 * 60

    // MARK: Search in local time

    /// The first local minute at or after `start` that matches every field, not after `limit`.
    func nextLocalMatch(atOrAfter start: LocalDateTime, notAfter limit: LocalDateTime) -> LocalDateTime? {
        var c = start
        while c <= limit {
            guard months.contains(c.month) else {
                if let month = months.next(after: c.month) {
                    c = LocalDateTime(year: c.year, month: month, day: 1, hour: 0, minute: 0)
                } else {
                    c = LocalDateTime(year: c.year + 1, month: months.first!, day: 1, hour: 0, minute: 0)
                }
                continue
            }
            guard dayMatches(c.date) else {
                c = c.startOfNextDay
                continue
            }
            guard hours.contains(c.hour) else {
                if let hour = hours.next(after: c.hour) {
                    c.hour = hour
                    c.minute = 0
                } else {
                    c = c.startOfNextDay
                }
                continue
            }
            guard minutes.contains(c.minute) else {
                if let minute = minutes.next(after: c.minute) {
                    c.minute = minute
                } else {
                    c = c.startOfNextHour
                }
                continue
            }
            return c <= limit ? c : nil
        }
        return nil
    }

    /// The last local minute at or before `start` that matches every field, not before `limit`.
    func previousLocalMatch(atOrBefore start: LocalDateTime, notBefore limit: LocalDateTime) -> LocalDateTime? {
        var c = start
        while c >= limit {
            guard months.contains(c.month) else {
                if let month = months.previous(before: c.month) {
                    c = LocalDateTime.endOfMonth(year: c.year, month: month)
                } else {
                    c = LocalDateTime.endOfMonth(year: c.year - 1, month: months.last!)
                }
                continue
            }
            guard dayMatches(c.date) else {
                c = c.endOfPreviousDay
                continue
            }
            guard hours.contains(c.hour) else {
                if let hour = hours.previous(before: c.hour) {
                    c.hour = hour
                    c.minute = 59
                } else {
                    c = c.endOfPreviousDay
                }
                continue
            }
            guard minutes.contains(c.minute) else {
                if let minute = minutes.previous(before: c.minute) {
                    c.minute = minute
                } else {
                    c = c.endOfPreviousHour
                }
                continue
            }
            return c >= limit ? c : nil
        }
        return nil
    }
}

// MARK: - Fields

/// A set of small integers (0...63) as a bit set: the values one cron field allows.
struct CronFieldSet: Sendable, Equatable {
    var bits: UInt64 = 0

    func contains(_ value: Int) -> Bool { value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0 }
    mutating func insert(_ value: Int) { bits |= 1 << UInt64(value) }
    mutating func remove(_ value: Int) { bits &= ~(1 << UInt64(value)) }

    /// The smallest value, if any.
    var first: Int? { bits == 0 ? nil : bits.trailingZeroBitCount }
    /// The largest value, if any.
    var last: Int? { bits == 0 ? nil : 63 - bits.leadingZeroBitCount }

    /// The smallest value greater than `value`.
    func next(after value: Int) -> Int? {
        guard value < 63 else { return nil }
        let above = value < 0 ? bits : bits & (~UInt64(0) << UInt64(value + 1))
        return above == 0 ? nil : above.trailingZeroBitCount
    }

    /// The largest value smaller than `value`.
    func previous(before value: Int) -> Int? {
        guard value > 0 else { return nil }
        let below = value >= 64 ? bits : bits & ((1 << UInt64(value)) - 1)
        return below == 0 ? nil : 63 - below.leadingZeroBitCount
    }
}

/// The five cron fields: their names for people, ranges and value names.
enum CronField: Sendable {
    case minute, hour, dayOfMonth, month, dayOfWeek

    var name: String {
        switch self {
        case .minute: "minute"
        case .hour: "hour"
        case .dayOfMonth: "day of month"
        case .month: "month"
        case .dayOfWeek: "day of week"
        }
    }

    var range: ClosedRange<Int> {
        switch self {
        case .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7
        }
    }

    /// Names allowed in place of numbers, upper-cased, and the number each stands for.
    var names: [String: Int] {
        switch self {
        case .month:
            [
                "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
                "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12,
            ]
        case .dayOfWeek:
            ["SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6]
        default: [:]
        }
    }

    private func error(_ token: some StringProtocol, _ problem: String) -> CronError {
        CronError(field: name, token: String(token), message: "\(name): \(problem)")
    }

    /// Parses one field (a comma-separated list of items) into the set of values it allows.
    func parse(_ text: String) throws(CronError) -> CronFieldSet {
        var set = CronFieldSet()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw error(text, "empty list item in '\(text)'") }
            try parseItem(item, into: &set)
        }
        return set
    }

    private func parseItem(_ item: Substring, into set: inout CronFieldSet) throws(CronError) {
        let parts = item.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let base = parts[0]
        var step = 1
        if parts.count == 2 {
            let stepText = parts[1]
            guard !stepText.isEmpty, stepText.allSatisfy(\.isASCIIDigitCharacter) else {
                throw error(item, "step '\(stepText)' in '\(item)' is not a number")
            }
            guard let value = Int(stepText), value >= 1, value <= range.upperBound else {
                throw error(item, "step \(stepText) in '\(item)' is out of range 1-\(range.upperBound)")
            }
            step = value
        }
        let low: Int
        let high: Int
        if base == "*" {
            (low, high) = (range.lowerBound, range.upperBound)
        } else if let dash = base.firstIndex(of: "-") {
            let first = base[..<dash]
            let second = base[base.index(after: dash)...]
            guard !first.isEmpty, !second.isEmpty else { throw error(item, "'\(base)' is not a valid range") }
            low = try value(first)
            high = try value(second)
            guard low <= high else { throw error(item, "range \(base) is reversed (\(low) > \(high))") }
        } else {
            low = try value(base)
            // `a/n` runs from `a` to the field's maximum (cronie); a bare `a` is just `a`.
            high = parts.count == 2 ? range.upperBound : low
        }
        for value in stride(from: low, through: high, by: step) { set.insert(value) }
    }

    /// One number or name, checked against the field's range.
    private func value(_ token: Substring) throws(CronError) -> Int {
        if let named = names[token.uppercased()] { return named }
        guard !token.isEmpty, token.allSatisfy(\.isASCIIDigitCharacter) else {
            switch self {
            case .month: throw error(token, "'\(token)' is not a number or a month name (JAN-DEC)")
            case .dayOfWeek: throw error(token, "'\(token)' is not a number or a day name (SUN-SAT)")
            default: throw error(token, "'\(token)' is not a number")
            }
        }
        guard let number = Int(token), range.contains(number) else {
            throw error(token, "\(token) is out of range \(range.lowerBound)-\(range.upperBound)")
        }
        return number
    }
}

extension Character {
    fileprivate var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}

// MARK: - Local (wall-clock) time

/// A proleptic Gregorian calendar day, without time zone.
struct LocalDate: Sendable, Equatable, Hashable {
    var year: Int
    var month: Int
    var day: Int

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    var dayIndex: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The day `dayIndex` days after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    init(dayIndex: Int) {
        let z = dayIndex + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// 0 = Sunday ... 6 = Saturday (1970-01-01 was a Thursday).
    var weekday: Int { Self.floorMod(dayIndex + 4, 7) }

    /// The day index of the Monday starting this day's ISO 8601 week.
    var isoWeekStart: Int { dayIndex - Self.floorMod(weekday + 6, 7) }

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func floorMod(_ a: Int, _ b: Int) -> Int {
        let r = a % b
        return r < 0 ? r + b : r
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}

/// A local wall-clock minute: a calendar day, an hour and a minute, without time zone.
struct LocalDateTime: Sendable, Equatable, Comparable {
    var year: Int
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
    }

    /// The local minute `minute` minutes after 1970-01-01 00:00.
    init(minute index: Int) {
        let date = LocalDate(dayIndex: LocalDate.floorDiv(index, 1440))
        let minuteOfDay = LocalDate.floorMod(index, 1440)
        self.init(year: date.year, month: date.month, day: date.day, hour: minuteOfDay / 60, minute: minuteOfDay % 60)
    }

    static func endOfMonth(year: Int, month: Int) -> LocalDateTime {
        LocalDateTime(year: year, month: month, day: LocalDate.daysIn(year: year, month: month), hour: 23, minute: 59)
    }

    var date: LocalDate { LocalDate(year: year, month: month, day: day) }

    /// Minutes since 1970-01-01 00:00 local.
    var minuteIndex: Int { date.dayIndex * 1440 + hour * 60 + minute }

    var startOfNextDay: LocalDateTime {
        if day < LocalDate.daysIn(year: year, month: month) {
            return LocalDateTime(year: year, month: month, day: day + 1, hour: 0, minute: 0)
        }
        return month == 12
            ? LocalDateTime(year: year + 1, month: 1, day: 1, hour: 0, minute: 0)
            : LocalDateTime(year: year, month: month + 1, day: 1, hour: 0, minute: 0)
    }

    var startOfNextHour: LocalDateTime {
        hour < 23 ? LocalDateTime(year: year, month: month, day: day, hour: hour + 1, minute: 0) : startOfNextDay
    }

    var endOfPreviousDay: LocalDateTime {
        if day > 1 { return LocalDateTime(year: year, month: month, day: day - 1, hour: 23, minute: 59) }
        return month == 1 ? .endOfMonth(year: year - 1, month: 12) : .endOfMonth(year: year, month: month - 1)
    }

    var endOfPreviousHour: LocalDateTime {
        hour > 0 ? LocalDateTime(year: year, month: month, day: day, hour: hour - 1, minute: 59) : endOfPreviousDay
    }

    /// The same wall-clock time `years` years later (Feb 29 becomes Feb 28 when needed).
    func addingYears(_ years: Int) -> LocalDateTime {
        let newYear = year + years
        return LocalDateTime(
            year: newYear, month: month, day: min(day, LocalDate.daysIn(year: newYear, month: month)),
            hour: hour, minute: minute)
    }

    static func < (lhs: LocalDateTime, rhs: LocalDateTime) -> Bool {
        (lhs.year, lhs.month, lhs.day, lhs.hour, lhs.minute) < (rhs.year, rhs.month, rhs.day, rhs.hour, rhs.minute)
    }
}

/// Converts between instants (seconds since 1970 UTC) and local wall-clock time in one zone.
struct ZoneMapper {
    let timeZone: TimeZone

    init(_ timeZone: TimeZone) { self.timeZone = timeZone }

    /// The zone's offset from UTC, in seconds, at an instant.
    func offset(at instant: Int) -> Int {
        timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant)))
    }

    /// The local wall-clock time at an instant, in seconds since 1970-01-01 00:00 local.
    func localSecond(of instant: Int) -> Int { instant + offset(at: instant) }

    /// The local minute (minutes since 1970-01-01 00:00 local) containing an instant.
    func localMinute(of instant: TimeInterval) -> Int {
        let seconds = Int(instant.rounded(.down))
        return LocalDate.floorDiv(localSecond(of: seconds), 60)
    }

    /// The instant a local minute stands for: its first occurrence if it occurs twice (fall back),
    /// the first instant after the gap if it does not exist (spring forward).
    func instant(ofLocalMinute minute: Int) -> Int {
        let local = minute * 60
        // Every offset in force within two days of this wall-clock time.
        let candidates = Set([-2, -1, 0, 1, 2].map { offset(at: local + $0 * 86_400) })
        let valid = candidates.map { local - $0 }.filter { localSecond(of: $0) == local }
        if let first = valid.min() { return first }
        // A gap: the smallest instant whose local time is past `local`. Below `low` the local time
        // is before it, at `high` after it; bisect.
        var low = local - candidates.max()!
        var high = local - candidates.min()!
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if localSecond(of: middle) > local { high = middle } else { low = middle }
        }
        return high
    }
}
