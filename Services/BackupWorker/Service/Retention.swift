import Foundation

// Which backups of one device to keep and which to delete. Pure logic: the caller lists the
// backups, passes the current time from its injected clock, and deletes what comes back in
// `delete`.

/// A refused retention policy, with a sentence for people.
public struct RetentionPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong: "keepLast must be at least 1, got 0".
    public let message: String

    /// The message for people.
    public var description: String { message }
}

/// One stored backup, as retention sees it.
public struct RetentionCandidate: Sendable, Equatable {
    /// The backup's identifier; unique among the candidates of one call.
    public var id: String
    /// When the backup was taken.
    public var created: Date
    /// Whether the backup was verified intact. Damaged backups never represent a period.
    public var good: Bool

    /// Makes a candidate.
    public init(id: String, created: Date, good: Bool) {
        self.id = id
        self.created = created
        self.good = good
    }
}

/// How many backups of a device to keep: the newest few, plus one per recent day, ISO week and
/// month ("keep within periods", as restic's `forget --keep-*` and borg's `prune --keep-*`).
///
/// The algorithm of ``select(_:now:in:)``:
/// 1. Backups created after `now` (clock skew) are kept and take no further part.
/// 2. The rest are ordered newest first; equal creation times are ordered by id, the greater id
///    counting as newer. Every later step reads this order, so the result is deterministic.
/// 3. The `keepLast` newest are kept, good or damaged.
/// 4. For days, ISO 8601 weeks (starting Monday) and calendar months, all in the given time zone:
///    going from newest to oldest, the first good backup seen in a period not seen before is kept
///    as that period's representative, until `keepDaily` days (`keepWeekly` weeks,
///    `keepMonthly` months) have a representative. Only periods holding a good backup count, so
///    "the last 7 days" means the last 7 days that have a good backup, not the last 7 calendar
///    days. The rules are independent: one backup may represent its day, week and month at once.
/// 5. The newest good backup is always kept, whatever the numbers say.
/// 6. Everything else is deleted.
public struct RetentionPolicy: Sendable, Equatable, Codable {
    /// How many of the newest backups to keep unconditionally (at least 1).
    public let keepLast: Int
    /// For how many of the most recent days with a good backup to keep the newest good one.
    public let keepDaily: Int
    /// For how many of the most recent ISO weeks with a good backup to keep the newest good one.
    public let keepWeekly: Int
    /// For how many of the most recent months with a good backup to keep the newest good one.
    public let keepMonthly: Int

    /// The policy of a fresh installation: the last 10, 7 daily, 4 weekly and 6 monthly.
    public static let `default` = RetentionPolicy(unchecked: 10, 7, 4, 6)

    /// Makes a policy; `keepLast` must be at least 1 and the other counts at least 0.
    public init(keepLast: Int, keepDaily: Int, keepWeekly: Int, keepMonthly: Int) throws(RetentionPolicyError) {
        guard keepLast >= 1 else {
            throw RetentionPolicyError(message: "keepLast must be at least 1, got \(keepLast)")
        }
        for (name, value) in [("keepDaily", keepDaily), ("keepWeekly", keepWeekly), ("keepMonthly", keepMonthly)]
        where value < 0 {
            throw RetentionPolicyError(message: "\(name) must be at least 0, got \(value)")
        }
        self.init(unchecked: keepLast, keepDaily, keepWeekly, keepMonthly)
    }

    private init(unchecked keepLast: Int, _ keepDaily: Int, _ keepWeekly: Int, _ keepMonthly: Int) {
        self.keepLast = keepLast
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
    }

    private enum CodingKeys: String, CodingKey {
        case keepLast, keepDaily, keepWeekly, keepMonthly
    }

    /// Decodes a policy and validates it as ``init(keepLast:keepDaily:keepWeekly:keepMonthly:)`` does.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(
                keepLast: container.decode(Int.self, forKey: .keepLast),
                keepDaily: container.decode(Int.self, forKey: .keepDaily),
                keepWeekly: container.decode(Int.self, forKey: .keepWeekly),
                keepMonthly: container.decode(Int.self, forKey: .keepMonthly))
        } catch let error as RetentionPolicyError {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    /// Splits backups into those to keep and those to delete (see the type's documentation for
    /// the algorithm). Both lists hold ids, newest first; together they hold every candidate once.
    public func select(
        _ backups: [RetentionCandidate], now: Date, in timeZone: TimeZone
    ) -> (keep: [String], delete: [String]) {
        let decisions = decide(backups, now: now, in: timeZone)
        return (decisions.filter(\.keep).map(\.id), decisions.filter { !$0.keep }.map(\.id))
    }

    /// What the policy decides for one backup, and why (the rules that keep it, or why none does).
    public struct Decision: Sendable, Equatable {
        public var id: String
        public var keep: Bool
        /// Kept: each rule keeping it ("last 10 (2nd newest)", "daily 2026-12-07", "weekly 2026-W49",
        /// "monthly 2026-12", "newest good", "taken after now"). Deleted: one sentence per rule saying
        /// why it does not keep it.
        public var reasons: [String]
    }

    /// The decision for every backup, newest first (see the type's documentation for the algorithm).
    public func decide(
        _ backups: [RetentionCandidate], now: Date, in timeZone: TimeZone
    ) -> [Decision] {
        let ordered = backups.sorted { a, b in
            a.created != b.created ? a.created > b.created : a.id > b.id
        }
        var reasons = [[String]](repeating: [], count: ordered.count)  // why each is kept, by index into `ordered`
        var past: [Int] = []
        for (index, backup) in ordered.enumerated() {
            if backup.created > now { reasons[index].append("taken after now (clock skew)") } else { past.append(index) }
        }

        for (rank, index) in past.prefix(keepLast).enumerated() {
            reasons[index].append("last \(keepLast) (\(Self.ordinal(rank + 1)) newest)")
        }
        let newestGood = past.first(where: { ordered[$0].good })
        if let newestGood, reasons[newestGood].isEmpty { reasons[newestGood].append("newest good backup") }

        let zone = ZoneMapper(timeZone)
        let days = past.map { index -> LocalDate in
            let seconds = Int(ordered[index].created.timeIntervalSince1970.rounded(.down))
            return LocalDate(dayIndex: LocalDate.floorDiv(zone.localSecond(of: seconds), 86_400))
        }
        let periods: [(rule: String, count: Int, key: (LocalDate) -> Int, name: (LocalDate) -> String)] = [
            ("daily", keepDaily, { $0.dayIndex }, { $0.dayName }),
            ("weekly", keepWeekly, { $0.isoWeekStart }, { $0.weekName }),
            ("monthly", keepMonthly, { $0.year * 12 + $0.month }, { $0.monthName }),
        ]
        var refusals = [[String]](repeating: [], count: ordered.count)
        refusals = refusals.indices.map { index in
            past.contains(index) ? ["not among the last \(keepLast)"] : []
        }
        for (rule, count, key, name) in periods {
            var seen = Set<Int>()
            var representative: [Int: Int] = [:]  // period → index of the backup kept for it
            for (position, index) in past.enumerated() where ordered[index].good {
                guard seen.count < count else { break }
                if seen.insert(key(days[position])).inserted {
                    reasons[index].append("\(rule) \(name(days[position]))")
                    representative[key(days[position])] = index
                }
            }
            for (position, index) in past.enumerated() where reasons[index].isEmpty {
                let period = key(days[position])
                if count == 0 {
                    continue
                } else if !ordered[index].good {
                    refusals[index].append("\(rule): damaged, it represents no period")
                } else if let kept = representative[period] {
                    refusals[index].append("\(rule) \(name(days[position])) keeps a newer one (\(ordered[kept].id))")
                } else {
                    refusals[index].append("\(rule): \(name(days[position])) is past the \(count) most recent with a good backup")
                }
            }
        }

        return ordered.indices.map { index in
            let keep = !reasons[index].isEmpty
            return Decision(id: ordered[index].id, keep: keep, reasons: keep ? reasons[index] : refusals[index])
        }
    }

    /// "1st", "2nd", "3rd", "4th", "11th", "22nd".
    static func ordinal(_ number: Int) -> String {
        let suffix = (11...13).contains(number % 100) ? "th" : [1: "st", 2: "nd", 3: "rd"][number % 10] ?? "th"
        return "\(number)\(suffix)"
    }
}

extension LocalDate {
    /// "2026-12-07".
    var dayName: String { String(format: "%04d-%02d-%02d", year, month, day) }
    /// "2026-12".
    var monthName: String { String(format: "%04d-%02d", year, month) }
    /// The ISO 8601 week, "2026-W49": the year and week of the week's Thursday.
    var weekName: String {
        let thursday = LocalDate(dayIndex: isoWeekStart + 3)
        let week = (thursday.dayIndex - LocalDate(year: thursday.year, month: 1, day: 1).dayIndex) / 7 + 1
        return String(format: "%04d-W%02d", thursday.year, week)
    }
}
