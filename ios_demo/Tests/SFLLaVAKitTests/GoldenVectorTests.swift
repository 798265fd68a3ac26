import Crypto
import Foundation
import XCTest

@testable import SFLLaVAKit

func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: Data(bytes)).map { String(format: "%02x", $0) }.joined()
}

/// The same golden checks as the Android core's JUnit tests: frame indices, resized pixels, packed
/// bytes and prompt text must equal what the Python suite wrote, bit for bit.
final class GoldenVectorTests: XCTestCase {
    func testFrameIndicesForBothRules() throws {
        for dir in try Bundles.folders() {
            let g = try Bundles.golden(dir)
            for cases in [g.frameIndices, g.frameIndicesSegmentMidpoint] {
                XCTAssertEqual(cases.cases.count, 6)
                for (total, want) in cases.cases {
                    let got = try FrameSampler.sample(totalFrames: Int(total) ?? -1, numFrames: cases.frames, rule: cases.rule)
                    XCTAssertEqual(got, want, "\(dir.lastPathComponent) \(cases.rule) total=\(total)")
                }
            }
        }
    }

    func testResizeIsBitExact() throws {
        for dir in try Bundles.folders() {
            let g = try Bundles.golden(dir)
            let p = g.patternFrame
            let src = GoldenClip.patternFrames(1, height: p.height, width: p.width)[0]
            let small = try FrameResizer.resize(src, width: p.width, height: p.height,
                                                outWidth: g.resizeSmall.to[1], outHeight: g.resizeSmall.to[0])
            XCTAssertEqual(small.map(Int.init), g.resizeSmall.uint8Hwc)
            let full = try FrameResizer.resize(src, width: p.width, height: p.height,
                                               outWidth: g.resizeModel.to[1], outHeight: g.resizeModel.to[0])
            XCTAssertEqual(full.reduce(0) { $0 + Int($1) }, g.resizeModel.sum)
            XCTAssertEqual(full.prefix(g.resizeModel.firstRowUint8Hwc.count).map(Int.init), g.resizeModel.firstRowUint8Hwc)
        }
    }

    func testPackedBytesAndTheGoldenClip() throws {
        for dir in try Bundles.folders() {
            let g = try Bundles.golden(dir)
            let m = try Bundles.manifest(dir)
            let pc = g.packedClip
            let packed = try TallImage.pack(GoldenClip.patternFrames(pc.frames, height: pc.height, width: pc.width),
                                            width: pc.width, height: pc.height)
            XCTAssertEqual(packed.count, pc.bytes)
            XCTAssertEqual(packed.prefix(64).map(Int.init), pc.firstBytes)
            XCTAssertEqual(sha256Hex(packed), pc.sha256)
            let frames = try GoldenClip.goldenAnswerFrames(g.greedy.clipFrames, outHeight: m.video.frameHeight,
                                                           outWidth: m.video.frameWidth)
            let clip = try TallImage.pack(frames, width: m.video.frameWidth, height: m.video.frameHeight)
            XCTAssertEqual(sha256Hex(clip), g.greedy.imageSha256)
        }
    }

    func testPromptPlanGivesTheGoldenRunnerInputs() throws {
        for dir in try Bundles.folders() {
            let g = try Bundles.golden(dir)
            let m = try Bundles.manifest(dir)
            let plan = try PromptPlan(manifest: m, question: g.prompt.question)
            XCTAssertEqual(plan.textBeforeVideo, g.prompt.textBeforeVideo)
            XCTAssertEqual(plan.textAfterVideo, g.prompt.textAfterVideo)
            XCTAssertEqual(plan.inputs, g.prompt.runnerInputs)
            XCTAssertEqual(plan.numBos, m.prompt.bosId == nil ? 0 : 1)
            XCTAssertNoThrow(try BundleFolder.load(dir))
        }
    }

    func testBadManifestsAreOneLineErrors() throws {
        let dir = try Bundles.folders()[0]
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("manifest.json"))) as? [String: Any])
        json["schema_version"] = 2
        XCTAssertThrowsError(try Manifest.parse(JSONSerialization.data(withJSONObject: json))) { e in
            XCTAssertTrue((e as? KitError)?.message.contains("schema_version 2; this app reads 4") ?? false)
        }
        json["schema_version"] = 4
        json.removeValue(forKey: "video")
        XCTAssertThrowsError(try Manifest.parse(JSONSerialization.data(withJSONObject: json))) { e in
            XCTAssertEqual((e as? KitError)?.message, "manifest.video: missing")
        }
        XCTAssertThrowsError(try Manifest.parse(Data("{not json".utf8)))
    }
}
