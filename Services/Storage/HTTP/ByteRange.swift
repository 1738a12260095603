/// One byte range of a `Range: bytes=…` request header (RFC 9110 §14.1.2), before it meets the size of
/// the representation. Pure: parsing and resolving touch nothing else.
public enum ByteRangeSpec: Sendable, Equatable {
    /// `bytes=first-last`.
    case closed(first: UInt64, last: UInt64)
    /// `bytes=first-`: from `first` to the end.
    case from(first: UInt64)
    /// `bytes=-length`: the last `length` bytes.
    case suffix(length: UInt64)

    /// The single range of a `Range` header value, or nil when the value is to be ignored (RFC 9110
    /// allows that): another unit than `bytes`, more than one range, or anything malformed (including
    /// `first > last`). Numbers too large for 64 bits saturate, which keeps their meaning.
    public static func parse(_ value: String) -> ByteRangeSpec? {
        var text = Substring(value).trimmingWhitespace()
        guard let equals = text.firstIndex(of: "=") else { return nil }
        guard text[..<equals].trimmingWhitespace().lowercased() == "bytes" else { return nil }
        text = text[text.index(after: equals)...].trimmingWhitespace()
        guard !text.contains(","), let dash = text.firstIndex(of: "-") else { return nil }
        let firstText = text[..<dash]
        let lastText = text[text.index(after: dash)...]
        if firstText.isEmpty {
            guard let length = number(lastText) else { return nil }
            return .suffix(length: length)
        }
        guard let first = number(firstText) else { return nil }
        if lastText.isEmpty { return .from(first: first) }
        guard let last = number(lastText), first <= last else { return nil }
        return .closed(first: first, last: last)
    }

    /// The bytes this range selects of a representation of `size` bytes (`first...last`, both
    /// inclusive), or nil when it selects none (RFC 9110 §14.1.1: unsatisfiable, 416).
    public func resolve(size: UInt64) -> ClosedRange<UInt64>? {
        guard size > 0 else { return nil }
        switch self {
        case .closed(let first, let last):
            guard first < size else { return nil }
            return first...min(last, size - 1)
        case .from(let first):
            guard first < size else { return nil }
            return first...(size - 1)
        case .suffix(let length):
            guard length > 0 else { return nil }
            return (size - min(length, size))...(size - 1)
        }
    }

    /// ASCII digits only (no sign, no spaces inside), saturating at `UInt64.max`.
    private static func number(_ text: Substring) -> UInt64? {
        guard !text.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in text.utf8 {
            guard (0x30...0x39).contains(byte) else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - 0x30))
            value = overflow1 || overflow2 ? UInt64.max : sum
        }
        return value
    }
}

/// What to send for a GET given its `Range` and `If-Range` headers and the representation's size and
/// entity tag (RFC 9110 §13.1.5, §14).
public enum RangeDecision: Sendable, Equatable {
    /// 200 with the whole representation: no Range, one to ignore, or an If-Range that does not match.
    case full
    /// 206 with bytes `first...last`.
    case partial(ClosedRange<UInt64>)
    /// 416 with `Content-Range: bytes */size`.
    case unsatisfiable

    /// The decision for the `Range` header values `ranges` (more than one field is ignored like a
    /// multi-range request), the `If-Range` value `ifRange`, a representation of `size` bytes and its
    /// strong entity tag `etag` (with its quotes). Only an exactly equal strong entity tag in `If-Range`
    /// keeps the range; a weak tag or a date never does (no Last-Modified is sent).
    public static func decide(ranges: [String], ifRange: String?, size: UInt64, etag: String) -> RangeDecision {
        guard ranges.count == 1, let spec = ByteRangeSpec.parse(ranges[0]) else { return .full }
        if let ifRange, Substring(ifRange).trimmingWhitespace() != Substring(etag) { return .full }
        guard let range = spec.resolve(size: size) else { return .unsatisfiable }
        return .partial(range)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's OWS).
    func trimmingWhitespace() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}
