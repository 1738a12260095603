import Foundation

/// A cluster backup (docs/rules.md#archives, B8): one `.tar.gz` holding one device backup per node,
/// `<node>_control_<timestamp>.tar` and `<node>_data_<timestamp>.tar`, at the top level.
public enum ClusterBundle {
    /// R8, decided once for the device and the coordinator: whether a file to restore is a cluster
    /// bundle — its name ends in `.tar.gz` or `.tgz` (any case), or its first bytes (when known) are
    /// gzip's. A device restores its own node file, never a bundle.
    public static func isBundle(fileName: String, firstBytes: Data? = nil) -> Bool {
        let lowered = fileName.lowercased()
        if lowered.hasSuffix(".tar.gz") || lowered.hasSuffix(".tgz") { return true }
        guard let magic = firstBytes, magic.count >= 2 else { return false }
        return magic[magic.startIndex] == 0x1f && magic[magic.startIndex + 1] == 0x8b
    }

    /// Why a bundle is not restored (R8), and what to do instead; `nodes` ("cl01-n1 (control), …") when
    /// the bundle could be read.
    public static func restoreRefusal(fileName: String, nodes: [String] = []) -> String {
        let holding = nodes.isEmpty ? "" : "; it holds files for " + nodes.joined(separator: ", ")
        return "\(fileName) is a cluster bundle (.tar.gz)\(holding). A device restores its own node file (R8): extract it with "
            + "'rampart backups extract \(fileName) --node NAME' and restore that .tar; restore the control node first"
    }

    /// The default limit on a bundle's uncompressed size: 4 GiB.
    public static let defaultMaxSize = Gzip.defaultMaxSize

    /// A node's file for `write`: its name, size, and its contents handed over a piece at a time.
    public struct StreamedMember {
        /// The file name (`<node>_control_<timestamp>.tar`, ...).
        public var fileName: String
        /// Its size in bytes.
        public var size: Int
        /// Hands the contents to `write`, a piece at a time.
        public var contents: (_ write: (Data) throws -> Void) throws -> Void

        /// Member `fileName` of `size` bytes, produced by `contents`.
        public init(fileName: String, size: Int, contents: @escaping (_ write: (Data) throws -> Void) throws -> Void) {
            self.fileName = fileName
            self.size = size
            self.contents = contents
        }
    }

    /// The bundle (tar.gz) of `members`, in the order given. Throws on an unsafe, nested or duplicate name.
    public static func build(members: [(fileName: String, data: Data)]) throws -> Data {
        var bundle = Data()
        try write(
            members: members.map { member in
                StreamedMember(fileName: member.fileName, size: member.data.count) { write in try write(member.data) }
            }
        ) { bundle.append($0) }
        return bundle
    }

    /// Writes the bundle `build` makes to `sink`, a piece at a time: each member's contents pass from its
    /// producer through the tar writer and the gzip compressor, so no member and no bundle is held whole.
    /// Throws on an unsafe, nested or duplicate name, or a member whose producer gives another size.
    public static func write(members: [StreamedMember], to sink: @escaping (Data) throws -> Void) throws {
        var seen = Set<String>()
        for member in members {
            try ArchivePath.validateRelative(member.fileName)
            guard !member.fileName.contains("/") else {
                throw ArchiveError(.unsafePath, member: member.fileName, "bundle member '\(member.fileName)' must not be in a folder")
            }
            guard seen.insert(member.fileName).inserted else {
                throw ArchiveError(.duplicate, member: member.fileName, "bundle member '\(member.fileName)' is given twice")
            }
        }
        let deflater = try Gzip.Deflater(sink: sink)
        var writer = TarWriter(sink: { try deflater.write($0) })
        for member in members {
            try writer.addFile(
                member.fileName, size: member.size, mode: BackupArchive.memberMode, contents: member.contents)
        }
        _ = try writer.finish()
        try deflater.finish()
    }

    /// The file names of the node files of a bundle read from `source`, in bundle order, after the checks
    /// of `members` (safe to extract; directories skipped), reading it a buffer at a time.
    public static func fileNames(_ source: some ArchiveByteSource, maxSize: Int = defaultMaxSize) throws -> [String] {
        var reader = TarStreamReader(try Gzip.InflatingSource(source, maxSize: maxSize))
        var check = ExtractionCheck()
        var names: [String] = []
        while let entry = try reader.next() {
            try check.admit(entry)
            if entry.kind == .file { names.append(ArchivePath.normalized(entry.path)) }
        }
        return names
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
        let fileName = try nodeFile(in: .data(bundle), node: node, maxSize: maxSize)
        var data = Data()
        _ = try copy(fileName, from: .data(bundle), maxSize: maxSize) { data.append($0) }
        return (fileName, data)
    }

    /// The file name of node `node`'s backup in a bundle (R8), read as a stream (every member checked as
    /// `members` checks them). Throws `ArchiveError.notFound` listing the nodes the bundle holds when
    /// there is none.
    public static func nodeFile(in bundle: ArchiveBytes, node: String, maxSize: Int = defaultMaxSize) throws -> String {
        var present: [String] = []
        for fileName in try fileNames(bundle.source(), maxSize: maxSize) {
            guard let parsed = try? BackupNaming.parseDeviceFile(fileName) else { continue }
            if parsed.deviceName == node { return fileName }
            present.append("\(parsed.deviceName) (\(parsed.role.fileNameTag ?? parsed.role.rawValue))")
        }
        let listed = present.isEmpty ? "no node files" : "files for " + present.joined(separator: ", ")
        throw ArchiveError(.notFound, member: node, "the bundle has no file for node '\(node)'; it holds \(listed)")
    }

    /// Hands the contents of the bundle's file `fileName` to `write`, a buffer at a time, and returns its
    /// size: a node's backup comes out of a bundle of any size without either being held in memory.
    /// Throws `ArchiveError.notFound` when the bundle has no such file.
    public static func copy(
        _ fileName: String, from bundle: ArchiveBytes, maxSize: Int = defaultMaxSize, to write: (Data) throws -> Void
    ) throws -> Int {
        var reader = TarStreamReader(try Gzip.InflatingSource(bundle.source(), maxSize: maxSize))
        while let entry = try reader.next() {
            guard entry.kind == .file, ArchivePath.normalized(entry.path) == fileName else { continue }
            var size = 0
            while let piece = try reader.readContents() {
                try write(piece)
                size += piece.count
            }
            return size
        }
        throw ArchiveError(.notFound, member: fileName, "the bundle has no file '\(fileName)'")
    }
}
