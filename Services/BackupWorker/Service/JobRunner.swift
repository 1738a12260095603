import Foundation
import Logging
import Postgres
import RampartBus
import RampartProto
import RampartRPC
import ServiceLifecycle
import Synchronization

/// Takes tasks from the durable queue in PostgreSQL and runs them, at most `concurrency` at a time.
/// Each running task holds a lease renewed every second (with its progress); a task whose worker
/// died is claimed again once its lease expires, and the token of the new lease fences the old
/// worker's late writes. Failed attempts are retried with backoff up to the task's attempt cap.
public final class JobRunner: Service, Sendable {
    /// Settings of the runner.
    public struct Configuration: Sendable {
        public var workerId: String
        public var concurrency = 4
        public var leaseSeconds = 15
        public var pollInterval = Duration.milliseconds(250)
        public var retryBaseSeconds = 2
        /// The `device-agent` executable restore drills run (P18): by default the one next to this
        /// process's own executable.
        public var deviceAgentPath = Configuration.defaultDeviceAgentPath

        public init(workerId: String) { self.workerId = workerId }

        /// `device-agent` in the folder of this process's executable.
        public static var defaultDeviceAgentPath: String {
            let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                ?? CommandLine.arguments[0]
            return URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("device-agent").path
        }
    }

    private let configuration: Configuration
    private let pool: PostgresPool
    private let taskRunner: TaskRunner
    private let drillRunner: DrillRunner
    private let logger: Logger

    /// A runner claiming from `pool`'s database and calling devices and storage through `client`.
    public init(configuration: Configuration, pool: PostgresPool, client: BusClient, logger: Logger) {
        self.configuration = configuration
        self.pool = pool
        var taskRunner = TaskRunner(client: client, logger: logger, leaseSeconds: configuration.leaseSeconds)
        taskRunner.previousBackup = { owner in try await pool.withConnection { try BackupStore.previousBackup(of: owner, on: $0) } }
        self.taskRunner = taskRunner
        self.drillRunner = DrillRunner(
            client: client, pool: pool, logger: logger, deviceAgentPath: configuration.deviceAgentPath)
        self.logger = logger
    }

    enum Interruption: Error {
        case leaseLost
        case cancelRequested
    }

    /// Claims and runs tasks until cancelled or shut down; running tasks finish their current attempt.
    public func run() async throws {
        let running = RunningCount()
        let doorbell = Doorbell()
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                var lastSweep = ContinuousClock.now
                while !Task.isCancelled {
                    if ContinuousClock.now - lastSweep > .seconds(5) {
                        lastSweep = ContinuousClock.now
                        _ = try? await pool.transaction { try BackupStore.failExhausted(on: $0) }
                    }
                    if running.value < configuration.concurrency, let task = await claim() {
                        running.add(1)
                        group.addTask { [self] in
                            await execute(task)
                            running.add(-1)
                            doorbell.ring()
                        }
                        continue
                    }
                    // Nothing to claim, or no free slot: wait for a task to end or the poll interval.
                    await withTaskGroup(of: Void.self) { wait in
                        wait.addTask { [interval = configuration.pollInterval] in
                            if (try? await Task.sleep(for: interval)) != nil { doorbell.ring() }
                        }
                        // Shutdown cancels this task (and the timer): the wait must end then too.
                        await withTaskCancellationHandler {
                            await doorbell.wait()
                        } onCancel: {
                            doorbell.ring()
                        }
                        wait.cancelAll()
                    }
                }
            }
        }
    }

    private func claim() async -> ClaimedTask? {
        let (worker, lease) = (configuration.workerId, configuration.leaseSeconds)
        do {
            return try await pool.withConnection { try BackupStore.claim(worker: worker, leaseSeconds: lease, on: $0) }
        } catch {
            logger.warning("cannot claim work", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func execute(_ task: ClaimedTask) async {
        var logger = logger
        logger[metadataKey: "task"] = "\(task.id)"
        logger[metadataKey: "target"] = "\(task.targetName)"
        let progress = TaskProgress()
        let outcome: Result<TaskResult, any Error> = await withTaskGroup(of: Result<TaskResult, any Error>?.self) { group in
            group.addTask { [taskRunner, drillRunner] in
                do {
                    if task.drill { return .success(try await drillRunner.run(task, progress: progress)) }
                    return .success(try await taskRunner.run(task, progress: progress))
                } catch {
                    return .failure(error)
                }
            }
            group.addTask { [self] in
                do {
                    try await keepLease(task, progress: progress)
                    return nil
                } catch {
                    return .failure(error)
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? .failure(Interruption.leaseLost)
        }
        do {
            try await record(task, outcome, logger: logger)
        } catch {
            logger.error("cannot record the task's outcome; its lease will expire and it will run again",
                         metadata: ["error": "\(error)"])
        }
    }

    /// Renews the lease every second, flushing progress; throws when the lease is lost or the job cancelled.
    private func keepLease(_ task: ClaimedTask, progress: TaskProgress) async throws {
        let lease = configuration.leaseSeconds
        var lastEmitted = -1
        while true {
            try await Task.sleep(for: .seconds(1))
            let update = progress.take()
            let bucket = update.map { $0.percent / 25 }
            let emit = bucket.map { $0 > lastEmitted } ?? false
            if let bucket, emit { lastEmitted = bucket }
            let check = try await pool.transaction { connection in
                let check = try BackupStore.renew(
                    task, leaseSeconds: lease, progress: update?.percent, message: update?.message, on: connection)
                if emit, let update, case .held = check {
                    try BackupStore.emit(
                        "backup.job.progress", subject: task.jobId,
                        ["task_id": task.id, "target": task.targetName, "percent": "\(update.percent)",
                         "message": update.message], on: connection)
                }
                return check
            }
            switch check {
            case .lost: throw Interruption.leaseLost
            case .held(cancelRequested: true): throw Interruption.cancelRequested
            case .held: continue
            }
        }
    }

    private func record(_ task: ClaimedTask, _ outcome: Result<TaskResult, any Error>, logger: Logger) async throws {
        let base = configuration.retryBaseSeconds
        switch outcome {
        case .success(.succeeded(let message, let backups)):
            let held = try await pool.transaction {
                try BackupStore.finish(task, state: .taskSucceeded, message: message, backups: backups, on: $0)
            }
            if held { logger.info("task succeeded", metadata: ["message": "\(message)"]) } else { logLeaseLost(logger) }
        case .success(.partiallySucceeded(let message, let backups)):
            let held = try await pool.transaction {
                try BackupStore.finish(task, state: .taskPartiallySucceeded, message: message, backups: backups, on: $0)
            }
            if held { logger.notice("task partially succeeded", metadata: ["message": "\(message)"]) } else { logLeaseLost(logger) }
        case .success(.drilled(let state, let message, let results)):
            // The results and their events are written with the task's end, fenced by its lease.
            let held = try await pool.transaction { connection in
                let held = try BackupStore.finish(task, state: state, message: message, on: connection)
                if held { try DrillStore.record(results, on: connection) }
                return held
            }
            if held {
                logger.log(level: state == .taskSucceeded ? .info : .notice, "drill task ended",
                           metadata: ["state": "\(state.label)", "message": "\(message)"])
            } else {
                logLeaseLost(logger)
            }
        case .success(.cancelled(let message)):
            let held = try await pool.transaction { try BackupStore.finish(task, state: .taskCancelled, message: message, on: $0) }
            if held { logger.notice("task cancelled", metadata: ["message": "\(message)"]) } else { logLeaseLost(logger) }
        case .failure(Interruption.leaseLost):
            logger.warning("lease lost; abandoning the attempt")
        case .failure(Interruption.cancelRequested):
            let held = try await pool.transaction {
                try BackupStore.finish(task, state: .taskCancelled, message: "cancelled while running", on: $0)
            }
            if !held { logLeaseLost(logger) }
        case .failure(let error):
            let reason = (error as? RPCError)?.description ?? "\(error)"
            let delay = min(60, base << min(task.attempts - 1, 5))
            let after = try await pool.transaction {
                try BackupStore.retryOrFail(task, reason: reason, delaySeconds: delay, on: $0)
            }
            switch after {
            case .retrying: logger.warning("attempt failed, will retry", metadata: ["error": "\(reason)"])
            case .failed: logger.warning("task failed", metadata: ["error": "\(reason)"])
            case .leaseLost: logLeaseLost(logger, error: reason)
            }
        }
    }

    /// The attempt's outcome was not recorded: its lease had passed to another attempt (a worker that was
    /// frozen or cut off past its lease), whose result stands.
    private func logLeaseLost(_ logger: Logger, error: String? = nil) {
        var metadata: Logger.Metadata = [:]
        if let error { metadata["error"] = "\(error)" }
        logger.warning("lease lost before the result was recorded; another worker owns the task, nothing written",
                       metadata: metadata)
    }
}

/// How many tasks this runner has running.
final class RunningCount: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func add(_ delta: Int) { count.add(delta, ordering: .relaxed) }
}

/// Wakes one waiter; a ring with nobody waiting is kept for the next wait.
final class Doorbell: Sendable {
    private let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.rung = true
            return nil
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.rung {
                    state.rung = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
