import Foundation
import Logging
import Postgres
import ServiceLifecycle

extension StorageService {
    /// Removes uploads nobody has written to for `idleSeconds`: their rows (open uploads only; a
    /// committed one is the record of its object) and their partial files, and partial files in
    /// `uploads/` that no upload owns and that are that old (a crash between creating a file and
    /// recording it). An attempt that ends cleanly aborts its own upload; this is for the ones whose
    /// worker died, froze past its lease, or lost the bus (docs/storage.md, "Abandoned uploads").
    /// Returns how many uploads and stray files were removed.
    @discardableResult
    public func sweepAbandonedUploads(idleSeconds: Int) async throws -> (uploads: Int, strays: Int) {
        let removed: [UUID] = try await transaction { connection, _ in
            try connection.query(
                """
                DELETE FROM storage.uploads
                WHERE state = 'open' AND updated_at < now() - make_interval(secs => \(Double(idleSeconds)))
                RETURNING id
                """
            ).map { try $0.decode("id", as: UUID.self) }
        }
        for id in removed {
            Files.remove(configuration.partPath(id))
            hashes.forget(id)
        }
        // Partial files without a row: listed first, then checked against the table, so a file made by a
        // BeginUpload that commits its row meanwhile is never taken (it is also younger than the limit).
        let cutoff = Date().addingTimeInterval(-Double(idleSeconds))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: configuration.uploadsDirectory)) ?? []
        var candidates: [UUID] = []
        for name in names where name.hasSuffix(".part") {
            guard let id = UUID(uuidString: String(name.dropLast(5))) else { continue }
            let attributes = try? FileManager.default.attributesOfItem(atPath: configuration.partPath(id))
            if let modified = attributes?[.modificationDate] as? Date, modified < cutoff { candidates.append(id) }
        }
        var strays = 0
        if !candidates.isEmpty {
            let texts = candidates.map { $0.uuidString.lowercased() }
            let known: Set<UUID> = try await transaction { connection, _ in
                Set(
                    try connection.query(
                        "SELECT id FROM storage.uploads WHERE id::text = ANY(\(texts)::text[])"
                    ).map { try $0.decode("id", as: UUID.self) })
            }
            for id in candidates where !known.contains(id) {
                Files.remove(configuration.partPath(id))
                strays += 1
            }
        }
        if !removed.isEmpty || strays > 0 {
            logger.notice(
                "abandoned uploads removed",
                metadata: ["uploads": "\(removed.count)", "stray-files": "\(strays)", "idle-seconds": "\(idleSeconds)"])
        }
        return (removed.count, strays)
    }
}

/// Runs `sweepAbandonedUploads` every `interval` until shutdown; a failed sweep is logged and tried
/// again at the next interval.
public struct UploadJanitor: Service {
    let storage: StorageService
    let idleSeconds: Int
    let interval: Duration

    public init(storage: StorageService, idleSeconds: Int, interval: Duration) {
        self.storage = storage
        self.idleSeconds = idleSeconds
        self.interval = interval
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                do {
                    try await storage.sweepAbandonedUploads(idleSeconds: idleSeconds)
                } catch {
                    storage.logger.warning("cannot sweep abandoned uploads; trying again later", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
