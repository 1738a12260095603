import Foundation

/// Runs blocking work (a socket loop, `waitpid`, a fuzzer, a libpq call) on a thread of its own, so it
/// never occupies Swift's cooperative pool. That pool has one thread per core — two on CI — and every test
/// of the process shares it: the hostile-input fuzzers, run on it for ten seconds each, once made other
/// tests' bus calls run past their deadlines (docs/testing.md).
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// `onOwnThread` for work that cannot fail.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: work()) }
    }
}
