import Foundation
import RampartLinks

/// `bus-bench --sign-links N`: how fast link-signer's signing and checking run (L2), in process:
/// N URLs signed, N checked, and the CSV of N rows rendered (docs/benchmarks.md).
enum LinkSigning {
    static func run(count: Int) throws {
        let ring = KeyRing(active: SigningKey.generate())
        let now = Date()
        let signer = ring.signer(at: now, baseURL: "http://127.0.0.1:7480")
        let paths = (0..<count).map { "/v1/backups/\(UUID().uuidString.lowercased())/fw-\($0)_primary_20261127T120000Z.tar" }
        var best = (sign: Double.infinity, verify: Double.infinity, csv: Double.infinity)
        var checked = 0
        for _ in 0..<5 {
            let clock = ContinuousClock()
            var links: [SignedLink] = []
            links.reserveCapacity(count)
            let signing = clock.measure {
                for path in paths { links.append(signer.sign(path: path, now: now)) }
            }
            let requests = links.map { link -> (String, String) in
                let rest = link.url.dropFirst(signer.baseURL.count)
                let parts = rest.split(separator: "?", maxSplits: 1)
                return (String(parts[0]), String(parts[1]))
            }
            checked = 0
            let verifying = clock.measure {
                for (path, query) in requests {
                    if case .success = signer.verify(method: "GET", path: path, query: query, now: now) { checked += 1 }
                }
            }
            let rows = links.enumerated().map { index, link in
                BackupLinksCSV.Row(
                    deviceName: "fw-\(index)", deviceId: UUID().uuidString, role: "ha-primary",
                    fileName: "fw-\(index)_primary_20261127T120000Z.tar", size: 65_536,
                    sha256: String(repeating: "ab", count: 32), createdAt: now, url: link.url, expiresAt: link.expires)
            }
            var csvBytes = 0
            let rendering = clock.measure { csvBytes = BackupLinksCSV.render(rows).utf8.count }
            best.sign = min(best.sign, seconds(signing))
            best.verify = min(best.verify, seconds(verifying))
            best.csv = min(best.csv, seconds(rendering))
            precondition(csvBytes > 0)
        }
        guard checked == count else { throw BenchError("only \(checked) of \(count) links checked out") }
        print("link signing, \(count) URLs, best of 5:")
        print(String(format: "  sign    %8.1f ms  (%.0f URLs/s)", best.sign * 1000, Double(count) / best.sign))
        print(String(format: "  verify  %8.1f ms  (%.0f URLs/s)", best.verify * 1000, Double(count) / best.verify))
        print(String(format: "  CSV     %8.1f ms  (%.0f rows/s)", best.csv * 1000, Double(count) / best.csv))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    struct BenchError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
