import Foundation
import Logging
import RampartBus
import RampartProto
import RampartTesting
import Synchronization

extension Data {
    /// UTF-8 bytes of `text`.
    init(_ text: String) { self = Data(text.utf8) }
}

/// A request header with `id`, `method` and an optional absolute deadline.
func requestHeader(
    id: UInt64, method: String = "rampart.test.v1.Test/Echo", deadline: Int64 = 0,
    metadata: [String: String] = [:]
) -> Rampart_Bus_V1_RequestHeader {
    var header = Rampart_Bus_V1_RequestHeader()
    header.requestID = id
    header.method = method
    header.deadlineUnixMs = deadline
    header.metadata = metadata
    return header
}

/// A worker's READY announcement.
func workerInfo(_ instance: String, capacity: UInt32, service: String = "") -> Rampart_Bus_V1_WorkerInfo {
    var info = Rampart_Bus_V1_WorkerInfo()
    info.instanceID = instance
    info.capacity = capacity
    info.service = service
    return info
}

/// A reply header as a service instance would send it.
func replyHeader(id: UInt64, status: Rampart_Bus_V1_StatusCode = .ok, message: String = "", by: String = "w")
    -> Rampart_Bus_V1_ReplyHeader
{
    FrameCodec.replyHeader(requestId: id, status: status, message: message, answeredBy: by)
}

/// A logger whose output lands in `record`.
func recordingLogger(_ record: LogRecord) -> Logger {
    Logger(label: "bus-tests") { _ in RecordingLogHandler(record: record) }
}
