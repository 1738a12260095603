import CZeroMQ

/// What to wait for on a polled socket or file descriptor.
public struct ZMQPollEvents: OptionSet, Sendable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    /// Ready to receive.
    public static let readable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// Ready to send.
    public static let writable = ZMQPollEvents(rawValue: Int16(ZMQ_POLLOUT))
}

/// A set of sockets and file descriptors waited on together with `zmq_poll`.
/// Like the sockets it holds, it belongs to one thread.
public struct ZMQPoller {
    private var items: [zmq_pollitem_t] = []

    /// An empty poller.
    public init() {}

    /// Adds a socket; returns its index for `isReadable(_:)`.
    @discardableResult
    public mutating func add(_ socket: ZMQSocket, events: ZMQPollEvents = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: socket.handle, fd: -1, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Adds a plain file descriptor (a pipe, a libpq socket); returns its index.
    @discardableResult
    public mutating func add(fileDescriptor: Int32, events: ZMQPollEvents = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fileDescriptor, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Waits until an item is ready or `timeoutMilliseconds` pass (-1 = forever). Returns how many are ready.
    @discardableResult
    public mutating func poll(timeoutMilliseconds: Int) throws -> Int {
        while true {
            let count = items.withUnsafeMutableBufferPointer {
                zmq_poll($0.baseAddress, Int32($0.count), timeoutMilliseconds)
            }
            if count >= 0 { return Int(count) }
            let error = ZMQError.last("poll")
            if error.isInterrupted { continue }
            throw error
        }
    }

    /// Whether the item at `index` became readable in the last `poll`.
    public func isReadable(_ index: Int) -> Bool {
        items[index].revents & Int16(ZMQ_POLLIN) != 0
    }
}
