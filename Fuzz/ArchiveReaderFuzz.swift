// libFuzzer target: the backup archive reader (Shared/RampartArchive): TarReader's members and
// safety checks, BackupArchive.read (manifest, sizes, SHA-256), and gzip bundles (ClusterBundle /
// Gzip.decompress, with a small size cap). Build and run with dev/fuzz.sh archive-reader [SECONDS].
// The first input byte picks the path; the rest is the archive.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func archiveReaderFuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    guard let bytes, count > 0 else { return 0 }
    let selector = bytes[0]
    let data = Data(bytes: bytes + 1, count: count - 1)
    switch selector % 4 {
    case 0:
        _ = try? TarReader(data: data).members()
        if let members = try? TarReader(data: data).safeMembers() {
            _ = try? TarReader.validateForExtraction(members)
        }
    case 1:
        if let contents = try? BackupArchive.read(data) {
            // What was read must build again and read back the same.
            let files = contents.files.map { BackupArchive.File(path: $0.path, contents: $0.contents) }
            if let (rebuilt, _) = try? BackupArchive.build(manifest: contents.manifest, files: files) {
                guard let again = try? BackupArchive.read(rebuilt), again.files.count == contents.files.count else {
                    fatalError("an archive that read fine does not survive rebuilding")
                }
            }
        }
    case 2:
        _ = try? Gzip.decompress(data, maxSize: 1 << 20)
    default:
        _ = try? ClusterBundle.members(data, maxSize: 1 << 20)
    }
    return 0
}
