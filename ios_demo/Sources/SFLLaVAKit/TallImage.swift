import Foundation

/// The `vision_encoder` input: T resized frames as one uint8 image [3, T*H, W], channel-planar,
/// frames stacked along height (byte (c, t, y, x) at ((c*T + t)*H + y)*W + x).
public enum TallImage {
    /// `frames`: each height x width x 3 interleaved (HWC), already at the model's frame size.
    public static func pack(_ frames: [[UInt8]], width: Int, height: Int) throws -> [UInt8] {
        guard !frames.isEmpty else { throw KitError("no frames to pack") }
        let plane = width * height
        let t = frames.count
        var out = [UInt8](repeating: 0, count: 3 * t * plane)
        for (f, rgb) in frames.enumerated() {
            guard rgb.count == plane * 3 else {
                throw KitError("frame \(f) has \(rgb.count) bytes, expected \(plane * 3) (\(width)x\(height) RGB)")
            }
            for c in 0..<3 {
                let base = (c * t + f) * plane
                var src = c
                for p in 0..<plane {
                    out[base + p] = rgb[src]
                    src += 3
                }
            }
        }
        return out
    }
}
