import Foundation
import RampartArchive
import RampartProto

/// Why a restore on the device CLI stopped (R1–R14). `message` is for the person at the console and
/// names what is wrong; `kind` lets tests and callers tell the refusals apart.
public struct RestoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What stopped the restore.
    public enum Kind: Sendable, Equatable {
        /// The command line was not understood (grammar, a bad host, user, path or file name).
        case usage
        /// The backup could not be fetched (scp, the download URL, the local backup folder).
        case fetch
        /// The archive was refused by `RampartArchive` (unsafe member, hash mismatch, not a backup, ...).
        case archive(ArchiveError.Code)
        /// A cluster bundle (.tar.gz) was given instead of a node's own file (R8).
        case clusterBundle
        /// This device's facts differ from the backup's (R3, R4); one line per difference.
        case mismatch([String])
        /// The archive verifies but cannot be restored as it is (no manager registration, encrypted keys, ...).
        case backupContents
        /// The restore coordinator refused the lease (its status code and message).
        case refused(Rampart_Bus_V1_StatusCode)
        /// The restore coordinator could not be reached or did not answer in time.
        case coordinatorUnavailable
        /// The lease was lost (stale fencing token, expired, released by an operator).
        case leaseLost
        /// Writing the configuration failed; the device was left as it was.
        case apply
        /// Another restore holds this device folder, or one was interrupted and must be recovered first.
        case busy
        /// The restored device could not come back (inventory lookup, presence).
        case boot
    }

    /// What stopped the restore.
    public var kind: Kind
    /// For people: what is wrong and, where useful, what to do.
    public var message: String

    /// An error of `kind` saying `message`.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
