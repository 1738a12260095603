import Foundation

/// A cluster backup (docs/rules.md#archives, B8): one `.tar.gz` holding one device backup per node,
/// `<node>_control_<timestamp>.tar` and `<node>_data_<timestamp>.tar`, at the top level.
public enum ClusterBundle {
    /// The default limit on a bundle's uncompressed size: 4 GiB.
    public static let defaultMaxSize = Gzip.defaultMaxSize

    /// The bundle (tar.gz) of `members`, in the order given. Throws on an unsafe, nested or duplicate name.
    public static func build(members: [(fileName: String, data: Data)]) throws -> Data {
        var writer = TarWriter()
        var seen = Set<String>()
        for member in members {
            try ArchivePath.validateRelative(member.fileName)
            guard !member.fileName.contains("/") else {
                throw ArchiveError(.unsafePath, member: member.fileName, "bundle member '\(member.fileName)' must not be in a folder")
            }
            guard seen.insert(member.fileName).inserted else {
                throw ArchiveError(.duplicate, member: member.fileName, "bundle member '\(member.fileName)' is given twice")
            }
            try writer.addFile(member.fileName, contents: member.data, mode: BackupArchive.memberMode)
        }
        return Gzip.compress(try writer.finish())
    }

    /// Every node file of a bundle, safe to extract, in bundle order (directories skipped).
    public static func members(_ bundle: Data, maxSize: Int = defaultMaxSize) throws -> [(fileName: String, data: Data)] {
        let tar = try Gzip.decompress(bundle, maxSize: maxSize)
        return try TarReader(data: tar).safeMembers().filter { $0.kind == .file }.map {
            (fileName: ArchivePath.normalized($0.path), data: $0.contents)
        }
    }

    /// The backup of node `node` out of a bundle (R8): the member whose file name carries that device
    /// name. Throws `ArchiveError.notFound` listing the nodes the bundle holds when there is none.
    public static func extract(_ bundle: Data, node: String, maxSize: Int = defaultMaxSize) throws -> (fileName: String, data: Data) {
        let all = try members(bundle, maxSize: maxSize)
        var present: [String] = []
        for member in all {
            guard let parsed = try? BackupNaming.parseDeviceFile(member.fileName) else { continue }
            if parsed.deviceName == node { return member }
            present.append("\(parsed.deviceName) (\(parsed.role.fileNameTag ?? parsed.role.rawValue))")
        }
        let listed = present.isEmpty ? "no node files" : "files for " + present.joined(separator: ", ")
        throw ArchiveError(.notFound, member: node, "the bundle has no file for node '\(node)'; it holds \(listed)")
    }
}
