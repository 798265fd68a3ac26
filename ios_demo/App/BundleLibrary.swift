import Foundation
import SFLLaVAKit

/// Bundles live in the app's Documents folder (Files app / Finder file sharing): one folder each.
enum BundleLibrary {
    static var root: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
    }

    /// Folder names that hold a manifest.json, sorted.
    static func names() -> [String] {
        let items = (try? FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)) ?? []
        return items.filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("manifest.json").path) }
            .map(\.lastPathComponent)
            .sorted()
    }

    static func load(_ name: String) throws -> BundleFolder {
        try BundleFolder.load(root.appendingPathComponent(name))
    }

    /// Where compiled Core ML models are kept between launches.
    static var compiledCache: URL {
        FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0].appendingPathComponent("compiled")
    }
}
