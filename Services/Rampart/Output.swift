import Foundation
import RampartJSON
import RampartProto
import SwiftProtobuf

typealias SwiftProtobufMessage = SwiftProtobuf.Message
typealias RPCStatus = Rampart_Bus_V1_StatusCode

/// Plain-text tables for people: a header row and left-aligned columns.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    mutating func add(_ cells: String...) { rows.append(cells) }

    func render() -> String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

/// Prints `message` as one line of JSON for scripts: every field, enums as the tables spell them, times
/// in RFC 3339 beside their milliseconds (`OperatorJSON`).
func printJSON(_ message: some SwiftProtobufMessage) throws {
    print(try OperatorJSON.encode(message))
}

/// A time in milliseconds since the epoch as "2026-11-27 13:11:57Z", or "-" for 0.
func formatTime(_ unixMs: Int64) -> String {
    guard unixMs > 0 else { return "-" }
    let date = Date(timeIntervalSince1970: Double(unixMs) / 1000)
    return date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false)
        .timeSeparator(.colon).dateTimeSeparator(.space).timeZone(separator: .omitted))
}
