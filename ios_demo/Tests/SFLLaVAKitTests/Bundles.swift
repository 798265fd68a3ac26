import Foundation
import XCTest

@testable import SFLLaVAKit

/// Bundles exported by the Python suite, named by `SFLLAVA_BUNDLES` (colon-separated folders):
/// `SFLLAVA_BUNDLES=/path/to/bundle swift test`. Without it the golden tests are skipped, not passed.
enum Bundles {
    static func folders() throws -> [URL] {
        guard let value = ProcessInfo.processInfo.environment["SFLLAVA_BUNDLES"], !value.isEmpty else {
            throw XCTSkip("set SFLLAVA_BUNDLES to one or more exported bundle folders")
        }
        return value.split(separator: ":").map { URL(fileURLWithPath: String($0)) }
    }

    static func manifest(_ dir: URL) throws -> Manifest {
        try Manifest.parse(Data(contentsOf: dir.appendingPathComponent("manifest.json")))
    }

    static func golden(_ dir: URL) throws -> Golden {
        try Golden.parse(Data(contentsOf: dir.appendingPathComponent("golden.json")))
    }
}
