import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A failure of the CLI itself (not of a service), with its message and exit code (README's table).
struct CommandFailure: Error, CustomStringConvertible {
    var message: String
    var exitCode: Int32
    var description: String { message }

    /// Prints the message and ends the command with its exit code.
    func exit() -> ExitCode {
        printError(message)
        return ExitCode(exitCode)
    }
}

/// Runs `body`, turning a `CommandFailure` into its message and exit code.
func reportingFailures<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let failure as CommandFailure {
        throw failure.exit()
    }
}

/// A file the CLI writes because an operator asked for it (`-o`, `--csv`): never replaces a folder, never
/// overwrites a file unless `--force`, never leaves a half-written file under the asked name.
///
/// - `-o DIR`, `-o DIR/` (and `-o` naming an existing folder) write `DIR/<default name>`; a path ending in
///   "/" that is not a folder is refused.
/// - The content goes to a hidden temporary file in the target folder (`.<name>.<random>.partial`, 0600),
///   then takes the asked name in one step: `link(2)` without `--force` (so a file that appeared meanwhile
///   is refused, not replaced), `rename(2)` with it. A failed write removes the temporary file.
/// - An existing file: exit 4, nothing touched. A write error: exit 1 with the reason.
struct OutputFile {
    /// Where the content ends.
    let path: String
    let force: Bool

    /// The file for `requested` (nil: `defaultName` in the current folder).
    init(_ requested: String?, defaultName: String, force: Bool) throws {
        self.force = force
        // A name from a service never climbs out of the folder it is written in.
        let defaultName = (defaultName as NSString).lastPathComponent
        guard !defaultName.isEmpty, defaultName != ".", defaultName != ".." else {
            throw CommandFailure(message: "the file has no usable name ('\(defaultName)'): give one with -o", exitCode: 1)
        }
        guard let requested, !requested.isEmpty else {
            path = defaultName
            try Self.checkTarget(path, force: force)
            return
        }
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: requested, isDirectory: &isFolder)
        if requested.hasSuffix("/") {
            guard exists, isFolder.boolValue else {
                throw CommandFailure(message: "\(requested) is not a folder (create it first, or name a file without the final '/')", exitCode: 1)
            }
            path = requested + defaultName
        } else if exists && isFolder.boolValue {
            path = requested + "/" + defaultName
        } else {
            path = requested
        }
        try Self.checkTarget(path, force: force)
    }

    private static func checkTarget(_ path: String, force: Bool) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            if isFolder.boolValue {
                throw CommandFailure(message: "\(path) is a folder: it is never replaced by a file", exitCode: 4)
            }
            if !force { throw CommandFailure(message: "\(path) exists: nothing written (--force replaces it)", exitCode: 4) }
        }
        let folder = (path as NSString).deletingLastPathComponent
        let parent = folder.isEmpty ? "." : folder
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isFolder), isFolder.boolValue else {
            throw CommandFailure(message: "cannot write \(path): the folder \(parent) does not exist", exitCode: 1)
        }
    }

    /// Writes `content` whole.
    func write(_ content: Data) throws {
        let partial = try begin()
        do {
            try partial.handle.write(contentsOf: content)
        } catch {
            partial.abandon()
            throw CommandFailure(message: "cannot write \(path): \(error.localizedDescription)", exitCode: 1)
        }
        try commit(partial)
    }

    /// A temporary file being written beside the target.
    final class Partial {
        let path: String
        let handle: FileHandle
        init(path: String, handle: FileHandle) {
            self.path = path
            self.handle = handle
        }

        /// Closes and removes it (the target is untouched).
        func abandon() {
            try? handle.close()
            unlink(path)
        }
    }

    /// Creates the temporary file.
    func begin() throws -> Partial {
        let folder = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let temporary = (folder.isEmpty ? "" : folder + "/") + ".\(name).\(UUID().uuidString.prefix(8)).partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CommandFailure(message: "cannot write \(path): \(String(cString: strerror(errno)))", exitCode: 1)
        }
        return Partial(path: temporary, handle: FileHandle(fileDescriptor: fd, closeOnDealloc: true))
    }

    /// Flushes the temporary file to disk and gives it the target's name.
    func commit(_ partial: Partial) throws {
        do {
            try partial.handle.synchronize()
            try partial.handle.close()
        } catch {
            partial.abandon()
            throw CommandFailure(message: "cannot write \(path): \(error.localizedDescription)", exitCode: 1)
        }
        if force {
            guard rename(partial.path, path) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(partial.path)
                throw CommandFailure(message: "cannot write \(path): \(reason)", exitCode: 1)
            }
            return
        }
        guard link(partial.path, path) == 0 else {
            let code = errno
            unlink(partial.path)
            if code == EEXIST {
                throw CommandFailure(message: "\(path) appeared while downloading: nothing replaced (--force replaces it)", exitCode: 4)
            }
            throw CommandFailure(message: "cannot write \(path): \(String(cString: strerror(code)))", exitCode: 1)
        }
        unlink(partial.path)
    }
}
