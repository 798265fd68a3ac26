import Foundation

/// How frames are chosen from a clip; raw values are the manifest's names.
public enum SamplingRule: String, Codable, Sendable, CaseIterable {
    case uniform
    case segmentMidpoint = "segment_midpoint"
}

/// Frame indices to decode, exactly as `sfllava_mobile.video.sample_frame_indices`.
public enum FrameSampler {
    /// - `uniform`: frame i = ((2i + 1) * total) / (2 * numFrames) in integer arithmetic; short clips repeat frames.
    /// - `segment_midpoint` (SF-LLaVA v1): n = min(total, numFrames), seg = (total - 1) / n in doubles,
    ///   frame i = (round(seg*i) + round(seg*(i+1))) / 2, rounding half to even like Python's round().
    public static func sample(totalFrames: Int, numFrames: Int, rule: SamplingRule) throws -> [Int] {
        guard totalFrames >= 1 else { throw KitError("the video has no frames to sample") }
        guard numFrames >= 1 else { throw KitError("numFrames must be >= 1, got \(numFrames)") }
        switch rule {
        case .uniform:
            return (0..<numFrames).map { i in (2 * i + 1) * totalFrames / (2 * numFrames) }
        case .segmentMidpoint:
            let n = min(totalFrames, numFrames)
            let seg = Double(totalFrames - 1) / Double(n)
            return (0..<n).map { i in
                let a = (seg * Double(i)).rounded(.toNearestOrEven)
                let b = (seg * Double(i + 1)).rounded(.toNearestOrEven)
                return Int(a + b) / 2
            }
        }
    }
}
