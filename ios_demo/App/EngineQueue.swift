import Foundation

/// The one serial queue every engine call runs on: runner calls block for seconds and must never run
/// on the main actor, and the engines are not thread-safe.
final class EngineQueue: @unchecked Sendable {
    private let queue = DispatchQueue(label: "dev.sfllava.engine", qos: .userInitiated)

    func run<T>(_ work: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try work() })
            }
        }
    }
}
