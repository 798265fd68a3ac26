import Foundation

/// The project's bilinear squash-resize (`sfllava_mobile.video.resize_frames`), bit for bit:
/// half-pixel centres, edge clamp, no antialiasing, every step a Float (float32) operation in the
/// order Python takes it, then round half to even and clamp to 0...255.
public enum FrameResizer {
    struct Axis {
        var i0: [Int], i1: [Int], w0: [Float], w1: [Float]
    }

    static func axis(_ nIn: Int, _ nOut: Int) -> Axis {
        let scale = Float(nIn) / Float(nOut)
        var a = Axis(i0: [], i1: [], w0: [], w1: [])
        for d in 0..<nOut {
            let src = max(scale * (Float(d) + 0.5) - 0.5, 0)
            let lo = Int(src.rounded(.down))
            let w1 = src - Float(lo)
            a.i0.append(lo)
            a.i1.append(min(lo + 1, nIn - 1))
            a.w1.append(w1)
            a.w0.append(1 - w1)
        }
        return a
    }

    /// `rgb`: height x width x 3 interleaved (HWC) bytes; returns outHeight x outWidth x 3, HWC.
    public static func resize(_ rgb: [UInt8], width: Int, height: Int, outWidth: Int, outHeight: Int) throws -> [UInt8] {
        guard width >= 1, height >= 1, outWidth >= 1, outHeight >= 1 else {
            throw KitError("sizes must be positive: \(width)x\(height) -> \(outWidth)x\(outHeight)")
        }
        guard rgb.count == width * height * 3 else {
            throw KitError("expected \(width * height * 3) RGB bytes for \(width)x\(height), got \(rgb.count)")
        }
        if width == outWidth && height == outHeight { return rgb }
        let ys = axis(height, outHeight)
        let xs = axis(width, outWidth)
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
        var o = 0
        for oy in 0..<outHeight {
            let r0 = ys.i0[oy] * width * 3
            let r1 = ys.i1[oy] * width * 3
            let wy0 = ys.w0[oy]
            let wy1 = ys.w1[oy]
            for ox in 0..<outWidth {
                let c0 = xs.i0[ox] * 3
                let c1 = xs.i1[ox] * 3
                let wx0 = xs.w0[ox]
                let wx1 = xs.w1[ox]
                for c in 0..<3 {
                    // Separate statements: each product and sum is rounded to Float, never fused.
                    let p00 = Float(rgb[r0 + c0 + c]) * wx0
                    let p01 = Float(rgb[r0 + c1 + c]) * wx1
                    let top = p00 + p01
                    let p10 = Float(rgb[r1 + c0 + c]) * wx0
                    let p11 = Float(rgb[r1 + c1 + c]) * wx1
                    let bottom = p10 + p11
                    let v0 = top * wy0
                    let v1 = bottom * wy1
                    let v = v0 + v1
                    out[o] = UInt8(min(max(v.rounded(.toNearestOrEven), 0), 255))
                    o += 1
                }
            }
        }
        return out
    }
}
