/// The differences between two lists of lines (Myers' O(ND) algorithm, after the common first and last
/// lines are set aside), as an edit script and as unified-diff hunks.
public enum LineDiff {
    /// One step of an edit script, by line index.
    public enum Edit: Sendable, Equatable {
        /// Line `from` of the old list equals line `to` of the new one.
        case same(from: Int, to: Int)
        /// Line `from` of the old list was removed.
        case removed(from: Int)
        /// Line `to` of the new list was added.
        case added(to: Int)
    }

    /// The most differing lines (removed plus added, after the common ends) worked out line by line;
    /// beyond, `edits` gives up (its memory grows with the square of this number: 2,000 take 16 MB).
    public static let maxDifferences = 2_000

    /// The shortest edit script turning `old` into `new`, or nil when more than `limit` lines differ.
    public static func edits<Line: Hashable>(_ old: [Line], _ new: [Line], limit: Int = maxDifferences) -> [Edit]? {
        var prefix = 0
        while prefix < old.count, prefix < new.count, old[prefix] == new[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < old.count - prefix, suffix < new.count - prefix,
            old[old.count - 1 - suffix] == new[new.count - 1 - suffix]
        {
            suffix += 1
        }
        // Lines become small integers: the middle is compared by number.
        var numbers: [Line: Int32] = [:]
        func number(_ line: Line) -> Int32 {
            if let known = numbers[line] { return known }
            let next = Int32(numbers.count)
            numbers[line] = next
            return next
        }
        let a = old[prefix..<(old.count - suffix)].map(number)
        let b = new[prefix..<(new.count - suffix)].map(number)
        guard let middle = myers(a, b, limit: limit) else { return nil }
        var script: [Edit] = (0..<prefix).map { .same(from: $0, to: $0) }
        script.reserveCapacity(prefix + middle.count + suffix)
        for edit in middle {
            switch edit {
            case .same(let from, let to): script.append(.same(from: from + prefix, to: to + prefix))
            case .removed(let from): script.append(.removed(from: from + prefix))
            case .added(let to): script.append(.added(to: to + prefix))
            }
        }
        for index in 0..<suffix {
            script.append(.same(from: old.count - suffix + index, to: new.count - suffix + index))
        }
        return script
    }

    /// Myers' greedy forward search, keeping each round's frontier to walk the path back.
    static func myers(_ a: [Int32], _ b: [Int32], limit: Int) -> [Edit]? {
        let (n, m) = (a.count, b.count)
        if n == 0 { return (0..<m).map { .added(to: $0) } }
        if m == 0 { return (0..<n).map { .removed(from: $0) } }
        let maxD = min(n + m, limit)
        guard n + m - 2 * min(n, m) <= maxD else { return nil }  // the sizes alone differ by more
        let offset = maxD + 1
        var v = [Int32](repeating: 0, count: 2 * maxD + 3)
        // trace[d]: v[k] for k in -d-1...d+1 as round d started.
        var trace: [[Int32]] = []
        var found: Int?
        search: for d in 0...maxD {
            trace.append(Array(v[(offset - d - 1)...(offset + d + 1)]))
            for k in stride(from: -d, through: d, by: 2) {
                var x: Int
                if k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]) {
                    x = Int(v[offset + k + 1])
                } else {
                    x = Int(v[offset + k - 1]) + 1
                }
                var y = x - k
                while x < n, y < m, a[x] == b[y] {
                    x += 1
                    y += 1
                }
                v[offset + k] = Int32(x)
                if x >= n, y >= m {
                    found = d
                    break search
                }
            }
        }
        guard let depth = found else { return nil }
        var (x, y) = (n, m)
        var reversed: [Edit] = []
        for d in stride(from: depth, through: 0, by: -1) {
            let round = trace[d]
            func at(_ k: Int) -> Int { Int(round[k + d + 1]) }
            let k = x - y
            let previousK = (k == -d || (k != d && at(k - 1) < at(k + 1))) ? k + 1 : k - 1
            let previousX = d == 0 ? 0 : at(previousK)
            let previousY = d == 0 ? 0 : previousX - previousK
            while x > previousX, y > previousY {
                reversed.append(.same(from: x - 1, to: y - 1))
                x -= 1
                y -= 1
            }
            if d > 0 {
                reversed.append(x == previousX ? .added(to: previousY) : .removed(from: previousX))
                (x, y) = (previousX, previousY)
            }
        }
        return reversed.reversed()
    }

    /// A unified diff's hunk.
    public struct Hunk: Sendable, Equatable {
        /// First old line (1-based; the line before, when the hunk removes nothing and the old side is empty).
        public var oldStart: Int
        public var oldCount: Int
        public var newStart: Int
        public var newCount: Int
        /// The lines, each starting with " ", "-" or "+".
        public var lines: [String]

        /// `@@ -a,b +c,d @@` and the lines, each ending in a line feed.
        public var text: String {
            "@@ -\(Self.range(oldStart, oldCount)) +\(Self.range(newStart, newCount)) @@\n"
                + lines.map { $0 + "\n" }.joined()
        }

        static func range(_ start: Int, _ count: Int) -> String {
            count == 1 ? "\(start)" : "\(count == 0 ? start - 1 : start),\(count)"
        }
    }

    /// The hunks of `script` (from `edits(old, new)`), each change with `context` unchanged lines around it.
    public static func hunks<Line: StringProtocol>(_ script: [Edit], old: [Line], new: [Line], context: Int = 3) -> [Hunk] {
        let changes = script.indices.filter { if case .same = script[$0] { return false } else { return true } }
        guard !changes.isEmpty else { return [] }
        // Runs of script indices that belong to one hunk: changes closer than 2 × context lines join.
        var groups: [ClosedRange<Int>] = []
        for index in changes {
            let low = max(0, index - context)
            let high = min(script.count - 1, index + context)
            if let last = groups.last, low <= last.upperBound + 1 {
                groups[groups.count - 1] = last.lowerBound...max(last.upperBound, high)
            } else {
                groups.append(low...high)
            }
        }
        return groups.map { group in
            var hunk = Hunk(oldStart: 0, oldCount: 0, newStart: 0, newCount: 0, lines: [])
            var (oldFirst, newFirst): (Int?, Int?) = (nil, nil)
            // Where this hunk sits when one side has no line in it: after the lines before it.
            var (oldBefore, newBefore) = (0, 0)
            for edit in script[..<group.lowerBound] {
                switch edit {
                case .same: oldBefore += 1; newBefore += 1
                case .removed: oldBefore += 1
                case .added: newBefore += 1
                }
            }
            for edit in script[group] {
                switch edit {
                case .same(let from, let to):
                    hunk.lines.append(" " + old[from])
                    oldFirst = oldFirst ?? from
                    newFirst = newFirst ?? to
                    hunk.oldCount += 1
                    hunk.newCount += 1
                case .removed(let from):
                    hunk.lines.append("-" + old[from])
                    oldFirst = oldFirst ?? from
                    hunk.oldCount += 1
                case .added(let to):
                    hunk.lines.append("+" + new[to])
                    newFirst = newFirst ?? to
                    hunk.newCount += 1
                }
            }
            hunk.oldStart = (oldFirst ?? oldBefore) + 1
            hunk.newStart = (newFirst ?? newBefore) + 1
            return hunk
        }
    }
}
