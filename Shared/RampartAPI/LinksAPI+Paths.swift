/// The download URLs the link signer signs and storage serves.
extension LinksAPI {
    /// The path every download URL starts with: `/v1/backups/<backup id>/<file name>`.
    public static let downloadPathPrefix = "/v1/backups/"

    /// The decoded download path of a backup's file.
    public static func downloadPath(backupId: String, fileName: String) -> String {
        downloadPathPrefix + backupId + "/" + fileName
    }
}
