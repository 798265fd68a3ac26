import Foundation

/// The deterministic clips the golden vectors are computed on, rebuilt from their formulas
/// (`sfllava_mobile.synthetic.synthetic_frames`, `sfllava_mobile.bundle.packed_frames`).
public enum GoldenClip {
    /// `synthetic_frames(numFrames, height, width)`: a gradient with a white square crossing it; HWC frames.
    public static func syntheticFrames(_ numFrames: Int, height: Int, width: Int) -> [[UInt8]] {
        let side = max(2, min(height, width) / 4)
        let step = max(1, (width - side) / max(numFrames - 1, 1))
        let wrap = max(width - side, 1)
        let y0 = (height - side) / 2
        return (0..<numFrames).map { t in
            let x0 = (t * step) % wrap
            var img = [UInt8](repeating: 0, count: height * width * 3)
            for y in 0..<height {
                for x in 0..<width {
                    let i = (y * width + x) * 3
                    let inSquare = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side
                    img[i] = inSquare ? 255 : UInt8(x * 255 / max(width - 1, 1))
                    img[i + 1] = inSquare ? 255 : UInt8(y * 255 / max(height - 1, 1))
                    img[i + 2] = inSquare ? 255 : 64
                }
            }
            return img
        }
    }

    /// The golden answer's clip: 96x128 synthetic frames resized to the model's frame size.
    public static func goldenAnswerFrames(_ numFrames: Int, outHeight: Int, outWidth: Int) throws -> [[UInt8]] {
        try syntheticFrames(numFrames, height: 96, width: 128).map {
            try FrameResizer.resize($0, width: 128, height: 96, outWidth: outWidth, outHeight: outHeight)
        }
    }

    /// Frame t of the packing vector: value (37*x + 91*y + 53*c + 17*t) % 256.
    public static func patternFrames(_ numFrames: Int, height: Int, width: Int) -> [[UInt8]] {
        (0..<numFrames).map { t in
            (0..<(height * width * 3)).map { i in
                let c = i % 3
                let x = (i / 3) % width
                let y = i / 3 / width
                return UInt8((37 * x + 91 * y + 53 * c + 17 * t) % 256)
            }
        }
    }
}
