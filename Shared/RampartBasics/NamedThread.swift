import Foundation

extension Thread {
    /// Starts `body` on a new thread called `name`, which `top -H`, `perf` and `/proc/PID/task/*/comm`
    /// show (at most 15 bytes of it). The name is given from inside the thread: on Linux a name set
    /// before `start()` never reaches the thread, which then goes by its creator's name.
    public static func start(named name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            Thread.current.name = name
            body()
        }
        if let stackSize { thread.stackSize = stackSize }
        thread.start()
    }
}
