/// Why a sealed object (or a piece of one) was refused. Descriptions name the frame and the problem,
/// never key material or plaintext.
public struct CryptoFormatError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong.
    public enum Code: Sendable, Hashable {
        /// The file does not start with "RMPOBJ1\n".
        case badMagic
        /// The header names a format version this code does not read.
        case unsupportedVersion
        /// The header is too short or holds impossible values (frame size, key id).
        case malformedHeader
        /// The object was sealed under another master key (the key id differs).
        case wrongMasterKey
        /// The wrapped data key did not authenticate under the master key.
        case keyUnwrapFailed
        /// A frame did not authenticate: a flipped bit, a reordered, dropped or appended frame, or a
        /// changed header.
        case frameAuthenticationFailed
        /// The sealed bytes are too short or too long for the layout (truncation or extension).
        case badLength
        /// A caller error: a frame index or range outside the object.
        case outOfRange
    }

    /// What is wrong.
    public var code: Code
    /// The frame concerned, when one is.
    public var frame: UInt64?
    /// Details for people (never key material).
    public var message: String

    /// An error with `code`, optionally about `frame`.
    public init(_ code: Code, frame: UInt64? = nil, _ message: String) {
        self.code = code
        self.frame = frame
        self.message = message
    }

    public var description: String {
        if let frame { return "CryptoFormatError.\(code) at frame \(frame): \(message)" }
        return "CryptoFormatError.\(code): \(message)"
    }
}

/// Why a master key file was refused or could not be created.
public struct KeyFileError: Error, CustomStringConvertible, Sendable {
    /// The key file's path.
    public var path: String
    /// What is wrong and how to fix it.
    public var message: String

    /// An error about the key file at `path`.
    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "master key file \(path): \(message)" }
}
