import Foundation

/// A bundle, video or input the app cannot use; `message` is one line a user can act on.
public struct KitError: Error, LocalizedError, Equatable, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var errorDescription: String? { message }
}
