import Foundation

/// A bundle folder, checked: what an engine needs is present and consistent.
public struct BundleFolder: Sendable {
    public let url: URL
    public let manifest: Manifest
    public let golden: Golden

    public var name: String { url.lastPathComponent }

    public func artifact(_ role: String, default fallback: String) -> URL {
        url.appendingPathComponent(manifest.artifacts[role] ?? fallback)
    }

    /// Reads and checks `url`; every problem is a `KitError` a user can act on.
    public static func load(_ url: URL) throws -> BundleFolder {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
            throw KitError("no bundle folder at \(url.path)")
        }
        let manifestURL = url.appendingPathComponent("manifest.json")
        guard let manifestData = fm.contents(atPath: manifestURL.path) else {
            throw KitError("\(url.lastPathComponent) is not a bundle: no manifest.json")
        }
        let manifest = try Manifest.parse(manifestData)
        let goldenURL = url.appendingPathComponent(manifest.artifacts["golden"] ?? "golden.json")
        guard let goldenData = fm.contents(atPath: goldenURL.path) else {
            throw KitError("\(url.lastPathComponent): no \(goldenURL.lastPathComponent) (copy the whole bundle folder)")
        }
        let bundle = BundleFolder(url: url, manifest: manifest, golden: try Golden.parse(goldenData))
        var needed = [manifest.artifacts["tokenizer"] ?? "tokenizer.json"]
        if let et = manifest.executorch { needed += [et.program] + (et.data.map { [$0] } ?? []) }
        if let cm = manifest.coreml { needed += methodNames.compactMap { cm.packages[$0] } }
        for file in needed where !fm.fileExists(atPath: url.appendingPathComponent(file).path) {
            throw KitError("\(url.lastPathComponent): \(file) is missing (copy the whole bundle folder)")
        }
        try bundle.checkFrames()
        return bundle
    }

    func checkFrames() throws {
        let v = manifest.video
        let shape = manifest.methods["vision_encoder"]?.inputs.first?.shape ?? []
        let rows = v.frames * v.frameHeight
        guard shape.count == 4, shape[2] == .fixed(rows), shape[3] == .fixed(v.frameWidth) else {
            throw KitError("\(name): the vision encoder's input is not \(v.frames) frames of \(v.frameHeight)x\(v.frameWidth) "
                + "(the manifest's frame count differs from the program's)")
        }
        guard golden.greedy.clipFrames == v.frames else {
            throw KitError("\(name): golden.json was made for \(golden.greedy.clipFrames) frames, the manifest says \(v.frames)")
        }
    }
}
