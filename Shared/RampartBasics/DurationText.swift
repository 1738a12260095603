/// Durations as people type them: "1d12h", "90m", "45s", "6h" — numbers, each followed by its unit
/// (days, hours, minutes, seconds), each unit at most once and in that order, at least one. Used for
/// `rampart audit --since 2h`, a link's validity (`--valid 1h30m`) and a device's backup objective
/// (`36h`), so all read the same way.
public enum DurationText {
    /// A unit of a duration, by the letter that follows its number.
    public enum Unit: Character, CaseIterable, Sendable {
        case days = "d", hours = "h", minutes = "m", seconds = "s"

        /// Seconds in one of this unit.
        var seconds: Int64 {
            switch self {
            case .days: 86_400
            case .hours: 3600
            case .minutes: 60
            case .seconds: 1
            }
        }
    }

    /// The seconds `text` stands for, with `units` allowed (all by default); nil when `text` is not such
    /// a duration (empty, a number without unit, a unit out of order or twice, a unit not allowed, a
    /// number of ten digits or more).
    public static func seconds(_ text: String, units: [Unit] = Unit.allCases) -> Int64? {
        guard !text.isEmpty else { return nil }
        var total: Int64 = 0
        var nextUnit = 0
        var digits = ""
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
                guard digits.count <= 9 else { return nil }
                continue
            }
            guard !digits.isEmpty, let index = units[nextUnit...].firstIndex(where: { $0.rawValue == character }),
                let number = Int64(digits)
            else { return nil }
            total += number * units[index].seconds
            nextUnit = index + 1
            digits = ""
        }
        return digits.isEmpty ? total : nil
    }

    /// `seconds` the way ``seconds(_:units:)`` reads it, largest units first, zero parts left out
    /// (129600 is "1d12h", 0 is "0s"); at most `parts` units, the rest dropped ("3d4h" of 3d4h5m6s).
    public static func describe(seconds: Int64, parts: Int = 2) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var text = ""
        var used = 0
        for unit in Unit.allCases where rest >= unit.seconds && used < parts {
            text += "\(rest / unit.seconds)\(unit.rawValue)"
            rest %= unit.seconds
            used += 1
        }
        return text
    }
}
