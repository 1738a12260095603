import Testing

@testable import StorageHTTP

@Suite("L2: Range and If-Range of HTTP downloads (pure)")
struct ByteRangeTests {
    @Test(
        "L2: a single bytes range parses; others are ignored",
        arguments: [
            ("bytes=0-99", ByteRangeSpec.closed(first: 0, last: 99)),
            ("bytes=5-5", .closed(first: 5, last: 5)),
            ("bytes=100-", .from(first: 100)),
            ("bytes=-500", .suffix(length: 500)),
            ("bytes=-0", .suffix(length: 0)),
            ("Bytes = 1-2 ", .closed(first: 1, last: 2)),
            ("bytes=99999999999999999999999-", .from(first: UInt64.max)),
            ("bytes=0-99999999999999999999999", .closed(first: 0, last: UInt64.max)),
        ] as [(String, ByteRangeSpec)])
    func parses(value: String, expected: ByteRangeSpec) {
        #expect(ByteRangeSpec.parse(value) == expected)
    }

    @Test(
        "L2: malformed, multiple or foreign-unit ranges are ignored (nil)",
        arguments: [
            "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-4", "bytes=0-1,5-6", "bytes=0-1,", "items=0-1",
            "bytes=+1-2", "bytes=1-2-3", "bytes=1 -2", "bytes=0x10-", "bytes= -", "0-1", "bytes=١-٢",
        ])
    func ignored(value: String) {
        #expect(ByteRangeSpec.parse(value) == nil)
    }

    @Test(
        "L2: ranges resolve against the size; unsatisfiable ones resolve to nil",
        arguments: [
            (ByteRangeSpec.closed(first: 0, last: 99), UInt64(1000), Optional(UInt64(0)...99)),
            (.closed(first: 990, last: 2000), 1000, 990...999),
            (.closed(first: 1000, last: 2000), 1000, nil),
            (.from(first: 999), 1000, 999...999),
            (.from(first: 1000), 1000, nil),
            (.suffix(length: 10), 1000, 990...999),
            (.suffix(length: 5000), 1000, 0...999),
            (.suffix(length: 0), 1000, nil),
            (.closed(first: 0, last: 0), 0, nil),
            (.suffix(length: 1), 0, nil),
            (.from(first: UInt64.max), 1000, nil),
            (.closed(first: 0, last: UInt64.max), 1000, 0...999),
        ] as [(ByteRangeSpec, UInt64, ClosedRange<UInt64>?)])
    func resolves(spec: ByteRangeSpec, size: UInt64, expected: ClosedRange<UInt64>?) {
        #expect(spec.resolve(size: size) == expected)
    }

    @Test("L2: If-Range keeps the range only for the same strong ETag; no or bad Range is a full download")
    func decisions() {
        let etag = "\"abc\""
        #expect(RangeDecision.decide(ranges: [], ifRange: nil, size: 10, etag: etag) == .full)
        #expect(RangeDecision.decide(ranges: ["bytes=2-3"], ifRange: nil, size: 10, etag: etag) == .partial(2...3))
        #expect(
            RangeDecision.decide(ranges: ["bytes=2-3"], ifRange: "\"abc\"", size: 10, etag: etag) == .partial(2...3))
        #expect(
            RangeDecision.decide(ranges: ["bytes=2-3"], ifRange: " \"abc\" ", size: 10, etag: etag) == .partial(2...3))
        #expect(RangeDecision.decide(ranges: ["bytes=2-3"], ifRange: "\"abd\"", size: 10, etag: etag) == .full)
        #expect(RangeDecision.decide(ranges: ["bytes=2-3"], ifRange: "W/\"abc\"", size: 10, etag: etag) == .full)
        #expect(
            RangeDecision.decide(ranges: ["bytes=2-3"], ifRange: "Wed, 21 Oct 2015 07:28:00 GMT", size: 10, etag: etag)
                == .full)
        #expect(RangeDecision.decide(ranges: ["bytes=20-"], ifRange: nil, size: 10, etag: etag) == .unsatisfiable)
        #expect(RangeDecision.decide(ranges: ["bytes=20-"], ifRange: "\"x\"", size: 10, etag: etag) == .full)
        #expect(RangeDecision.decide(ranges: ["bytes=0-1", "bytes=2-3"], ifRange: nil, size: 10, etag: etag) == .full)
        #expect(RangeDecision.decide(ranges: ["bytes=0-1,2-3"], ifRange: nil, size: 10, etag: etag) == .full)
        #expect(RangeDecision.decide(ranges: ["bytes=junk"], ifRange: nil, size: 10, etag: etag) == .full)
    }

    @Test("L2: Content-Disposition quotes and escapes the file name; non-ASCII adds filename*")
    func contentDisposition() {
        #expect(
            DownloadResponder.contentDisposition(fileName: "fw-1_primary_20260101.tar")
                == "attachment; filename=\"fw-1_primary_20260101.tar\"")
        #expect(
            DownloadResponder.contentDisposition(fileName: "a\"b\\c.tar") == "attachment; filename=\"a\\\"b\\\\c.tar\"")
        #expect(
            DownloadResponder.contentDisposition(fileName: "pare-feu-é.tar")
                == "attachment; filename=\"pare-feu-_.tar\"; filename*=UTF-8''pare-feu-%C3%A9.tar")
    }

    @Test("L2: the request target splits into the raw path and raw query, nothing decoded")
    func split() {
        #expect(
            DownloadResponder.split("/v1/backups/b/f%20g.tar?sig=a%2Bb&exp=1") == (
                "/v1/backups/b/f%20g.tar", "sig=a%2Bb&exp=1"
            ))
        #expect(DownloadResponder.split("/v1/backups/b/f.tar") == ("/v1/backups/b/f.tar", ""))
        #expect(DownloadResponder.split("/x?a?b") == ("/x", "a?b"))
        #expect(DownloadResponder.printable("bad\nsig\u{7f}é", limit: 100) == "bad?sig??")
    }
}
