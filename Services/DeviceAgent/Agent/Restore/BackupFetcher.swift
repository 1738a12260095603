import Foundation
import Logging
import RampartArchive

#if canImport(Glibc)
    import Glibc
#endif

/// How the device CLI fetches backups (R2): the system scp client for `location`, curl for signed
/// download URLs, the local backup folder for `backup`.
public struct FetchSettings: Sendable {
    /// The scp client.
    public var scpPath = "/usr/bin/scp"
    /// The curl client.
    public var curlPath = "/usr/bin/curl"
    /// `-i FILE` for scp (`--ssh-identity`).
    public var sshIdentity: String?
    /// `-o UserKnownHostsFile=FILE` for scp (`--ssh-known-hosts`); nil: ssh's own (~/.ssh/known_hosts).
    public var sshKnownHosts: String?
    /// The longest a fetch may take.
    public var timeout: Duration = .seconds(600)
    /// ssh's and curl's connect timeout, seconds.
    public var connectTimeoutSeconds = 10
    /// The largest backup accepted (1 GiB; a configuration tree is at most 256 MiB).
    public var maxBytes = 1 << 30

    /// Defaults: /usr/bin/scp and /usr/bin/curl, 10 minutes, 1 GiB.
    public init() {}
}

/// A backup file on the device, ready to be verified.
public struct FetchedBackup: Sendable {
    /// Where it is.
    public var path: String
    /// Its file name (as the command named it).
    public var fileName: String
    /// Whether it is a download in the device folder that must be removed afterwards.
    public var isTemporary: Bool

    /// Opens the file for the restore to stream it (at most `maxBytes`; a link or anything but a regular
    /// file is refused). The open file is what is verified and then staged: renaming or replacing the path
    /// afterwards changes nothing.
    public func open(maxBytes: Int) throws(RestoreError) -> ArchiveFile {
        do {
            return try ArchiveFile(path: path, maxSize: maxBytes)
        } catch let error as ArchiveError where error.code == .tooLarge {
            var info = stat()
            let size = stat(path, &info) == 0 ? "\(info.st_size)" : "more than \(maxBytes)"
            throw RestoreError(.fetch, "\(fileName) is \(size) bytes, over the limit of \(maxBytes) bytes")
        } catch let error as ArchiveError {
            throw RestoreError(.fetch, "\(fileName) cannot be read: \(error.message)")
        } catch {
            throw RestoreError(.fetch, "\(fileName) cannot be read: \(error)")
        }
    }

    /// Reads the whole file into memory (at most `maxBytes`); a restore streams it instead (`open`).
    public func read(maxBytes: Int) throws(RestoreError) -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw RestoreError(.fetch, "\(fileName) cannot be read: \(String(cString: strerror(errno)))")
        }
        guard Int(info.st_size) <= maxBytes else {
            throw RestoreError(.fetch, "\(fileName) is \(info.st_size) bytes, over the limit of \(maxBytes) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RestoreError(.fetch, "\(fileName) cannot be read")
        }
        return data
    }

    /// Removes the file when it was downloaded for this restore.
    public func removeIfTemporary() {
        if isTemporary { unlink(path) }
    }
}

/// Fetches a backup from where a `restore remote-manager-backup` command says (R2).
public enum BackupFetcher {
    /// Prefix of downloads in the device folder (removed after the restore, and by recovery).
    static let downloadPrefix = ".restore-download-"

    /// Brings the backup of `source` onto the device: scp or curl into a temporary file in
    /// `directory`, or the file in `directory/backups/`. Throws `RestoreError(.fetch)` saying why not.
    public static func fetch(
        _ source: BackupSource, directory: String, settings: FetchSettings, logger: Logger
    ) async throws(RestoreError) -> FetchedBackup {
        switch source {
        case .local(let fileName):
            return try local(fileName, directory: directory, settings: settings)
        case .location(let location):
            let destination = directory + "/" + downloadPrefix + UUID().uuidString + ".tar"
            let command = ExternalCommand(
                executable: settings.scpPath,
                arguments: scpArguments(location, destination: destination, settings: settings),
                timeout: settings.timeout)
            logger.info(
                "fetching backup with scp",
                metadata: ["source": "\(location.remoteSpec)", "port": "\(location.port.map(String.init) ?? "22")"])
            let result: ExternalCommand.Result
            do {
                result = try await command.run()
            } catch let error as AgentError {
                unlink(destination)
                throw RestoreError(.fetch, "scp could not fetch \(location.remoteSpec): \(error.description)")
            } catch {
                unlink(destination)
                throw RestoreError(.fetch, "scp could not fetch \(location.remoteSpec): \(error)")
            }
            guard result.status == 0 else {
                unlink(destination)
                let detail = result.diagnostics.isEmpty ? "no message" : result.diagnostics
                throw RestoreError(
                    .fetch, "scp could not fetch \(location.remoteSpec) (exit \(result.status)): \(detail)")
            }
            guard FileManager.default.fileExists(atPath: destination) else {
                throw RestoreError(.fetch, "scp reported success but wrote no file for \(location.remoteSpec)")
            }
            return FetchedBackup(path: destination, fileName: location.fileName, isTemporary: true)
        case .url(let url):
            let destination = directory + "/" + downloadPrefix + UUID().uuidString + ".tar"
            let command = ExternalCommand(
                executable: settings.curlPath,
                arguments: curlArguments(url, destination: destination, settings: settings),
                timeout: settings.timeout)
            logger.info(
                "downloading backup", metadata: ["host": "\(url.host ?? "")", "file": "\(url.lastPathComponent)"])
            let result: ExternalCommand.Result
            do {
                result = try await command.run()
            } catch let error as AgentError {
                unlink(destination)
                throw RestoreError(.fetch, "the download of \(url.lastPathComponent) failed: \(error.description)")
            } catch {
                unlink(destination)
                throw RestoreError(.fetch, "the download of \(url.lastPathComponent) failed: \(error)")
            }
            let status = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            guard result.status == 0, status == 200 else {
                // --fail-with-body keeps the server's reason ("forbidden: link expired") in the file.
                let body =
                    (FileManager.default.contents(atPath: destination)).map {
                        String(decoding: $0.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    } ?? ""
                unlink(destination)
                var message = "the download of \(url.lastPathComponent) failed"
                if status != 0 { message += ": HTTP \(status)" }
                if !body.isEmpty, status >= 400 { message += " (\(body))" }
                if status == 0 || (result.status != 0 && result.status != 22) {
                    message += status == 0 ? ": " : "; "
                    message +=
                        "curl exit \(result.status)" + (result.diagnostics.isEmpty ? "" : ": \(result.diagnostics)")
                }
                throw RestoreError(.fetch, message)
            }
            return FetchedBackup(path: destination, fileName: url.lastPathComponent, isTemporary: true)
        }
    }

    /// The file `directory/backups/fileName`: a regular file (not a link), not over the size limit.
    static func local(_ fileName: String, directory: String, settings: FetchSettings) throws(RestoreError)
        -> FetchedBackup
    {
        let path = directory + "/backups/" + fileName
        var info = stat()
        guard lstat(path, &info) == 0 else {
            let present = ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/backups")) ?? [])
                .filter { !$0.hasPrefix(".") }.sorted()
            let listing =
                present.isEmpty ? "the local backup folder is empty" : "it holds: " + present.joined(separator: ", ")
            throw RestoreError(.fetch, "no backup '\(fileName)' in the local backup folder (\(listing))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw RestoreError(.fetch, "backups/\(fileName) is not a regular file (links and folders are not restored)")
        }
        guard Int(info.st_size) <= settings.maxBytes else {
            throw RestoreError(
                .fetch, "backups/\(fileName) is \(info.st_size) bytes, over the limit of \(settings.maxBytes)")
        }
        return FetchedBackup(path: path, fileName: fileName, isTemporary: false)
    }

    /// scp's arguments: batch mode, new host keys accepted (changed ones refused), the port of
    /// `HOST:PORT`, the identity and known-hosts file when configured, then source and destination.
    public static func scpArguments(_ location: SCPLocation, destination: String, settings: FetchSettings) -> [String] {
        var arguments = [
            "-B", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ConnectTimeout=\(settings.connectTimeoutSeconds)",
        ]
        if let knownHosts = settings.sshKnownHosts { arguments += ["-o", "UserKnownHostsFile=\(knownHosts)"] }
        if let identity = settings.sshIdentity { arguments += ["-i", identity] }
        if let port = location.port { arguments += ["-P", String(port)] }
        arguments += ["--", location.remoteSpec, destination]
        return arguments
    }

    /// curl's arguments: silent but with errors, http(s) only, the body kept on HTTP errors (so the
    /// server's reason can be shown), the status code on stdout, bounded size and time.
    static func curlArguments(_ url: URL, destination: String, settings: FetchSettings) -> [String] {
        [
            "--fail-with-body", "-sS", "--proto", "=http,https", "--max-filesize", String(settings.maxBytes),
            "--connect-timeout", String(settings.connectTimeoutSeconds), "-o", destination, "-w", "%{http_code}",
            "--", url.absoluteString,
        ]
    }
}
