import Crypto
import Foundation
import RampartArchive
import RampartBasics
import RampartBus
import RampartConfigDiff
import RampartProto
import RampartRPC

extension StorageService {
    // MARK: DiffObjects

    /// The largest object read whole for a diff, bytes: two of them are held in memory at once.
    static let maxDiffObjectSize: UInt64 = 256 << 20

    /// Compares the configuration trees of two stored backups (`TreeDiff`): the objects are decrypted
    /// here and nothing of them leaves but the diff, secrets masked (B12). The audit record names both.
    func diffObjects(
        _ request: Rampart_Storage_V1_DiffObjectsRequest, _ context: RequestContext
    ) async throws -> Rampart_Storage_V1_DiffObjectsResponse {
        let old = try StorageRules.sha256(request.old.objectID, field: "old.object_id")
        let new = try StorageRules.sha256(request.new.objectID, field: "new.object_id")
        guard request.contextLines <= 1000 else { throw RPCError.invalidArgument("context_lines is at most 1000") }
        context.audit.subject = new
        context.audit.note("old", old + (request.old.member.isEmpty ? "" : "/" + request.old.member))
        context.audit.note("new", new + (request.new.member.isEmpty ? "" : "/" + request.new.member))
        // Both sides are read, decrypted and unpacked at once (on two threads of the blocking pool).
        async let oldSide = configurationTree(old, member: request.old.member, side: "old", context)
        async let newSide = configurationTree(new, member: request.new.member, side: "new", context)
        let ((oldName, oldTree), (newName, newTree)) = try await (oldSide, newSide)
        let contextLines = request.contextLines == 0 ? 3 : Int(request.contextLines)
        let diff = try await BlockingPool.shared.run { TreeDiff.compare(old: oldTree, new: newTree, context: contextLines) }
        var response = Rampart_Storage_V1_DiffObjectsResponse()
        response.oldFileName = oldName
        response.newFileName = newName
        response.unchanged = UInt32(diff.unchanged)
        response.volatileOnly = UInt32(diff.volatileOnly)
        response.files = diff.files.map(Self.message(_:))
        response.rules = ConfigNormaliser.rules.map { rule in
            var use = Rampart_Storage_V1_NormalisationRuleUse()
            use.name = rule.name
            use.files = rule.files
            use.description_p = rule.description
            use.lines = UInt32(diff.touched[rule.name] ?? 0)
            return use
        }
        context.logger.info(
            "configuration diff", metadata: ["old": "\(oldName)", "new": "\(newName)", "files": "\(diff.files.count)"])
        return response
    }

    static func message(_ file: FileDiff) -> Rampart_Storage_V1_FileDifference {
        var message = Rampart_Storage_V1_FileDifference()
        message.path = file.path
        switch file.change {
        case .added: message.change = .added
        case .removed: message.change = .removed
        case .changed: message.change = .changed
        }
        message.secret = file.secret
        message.binary = file.binary
        message.linesAdded = UInt32(file.linesAdded)
        message.linesRemoved = UInt32(file.linesRemoved)
        message.secretValuesChanged = file.secretValuesChanged
        message.tooManyToShow = file.tooManyToShow
        message.unified = file.unified
        message.summary = file.summary
        return message
    }

    /// The file name and configuration tree of object `id` (or of its node file `member`, in a bundle).
    private func configurationTree(
        _ id: String, member: String, side: String, _ context: RequestContext
    ) async throws -> (String, [String: Data]) {
        let info = try await statObject(.with { $0.objectID = id })
        guard info.size <= Self.maxDiffObjectSize else {
            throw RPCError.failedPrecondition(
                "the \(side) object \(info.fileName) holds \(info.size) bytes; a diff reads at most \(Self.maxDiffObjectSize >> 20) MiB")
        }
        let path = configuration.objectPath(id)
        let masterKey = masterKey
        let data: Data
        do {
            data = try await BlockingPool.shared.run {
                let opened = try ObjectStore.open(path, masterKey: masterKey, expectedSize: info.size)
                defer { opened.file.close() }
                var data = Data(capacity: Int(info.size))
                try ObjectStore.forEachFrame(opened) { data.append($0) }
                guard SHA256.hash(data: data).hexString == id else {
                    throw ObjectDamage(reason: "its content's SHA-256 is not its id")
                }
                return data
            }
        } catch let error as FileIOError {
            throw error.rpcError
        } catch let error as RPCError {
            throw error
        } catch {
            throw dataLoss(id, error, context.logger)
        }
        let isBundle = ClusterBundle.isBundle(fileName: info.fileName, firstBytes: data.prefix(2))
        do {
            switch (isBundle, member.isEmpty) {
            case (false, true):
                return (info.fileName, try ConfigTree.files(ofArchive: data))
            case (true, false):
                let nodes = try ClusterBundle.members(data)
                guard let node = nodes.first(where: { $0.fileName == member }) else {
                    throw RPCError.notFound(
                        "the \(side) bundle \(info.fileName) holds no \(member) (it holds \(nodes.map(\.fileName).joined(separator: ", ")))")
                }
                return (member, try ConfigTree.files(ofArchive: node.data))
            case (true, true):
                let names = (try? ClusterBundle.members(data).map(\.fileName)) ?? []
                throw RPCError.invalidArgument(
                    "the \(side) object \(info.fileName) is a cluster bundle: name one of its node files as member (\(names.joined(separator: ", ")))")
            case (false, false):
                throw RPCError.invalidArgument("the \(side) object \(info.fileName) is a device backup, not a bundle: leave member empty")
            }
        } catch let error as RPCError {
            throw error
        } catch let error as ArchiveError {
            throw RPCError(.dataLoss, "the \(side) object \(info.fileName) is not a readable backup: \(error)")
        }
    }
}
