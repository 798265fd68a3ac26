import AVFoundation
import CoreGraphics
import SFLLaVAKit
import UIKit

/// The sampled frames of one video: resized for the model (HWC RGB) and thumbnails for the strip.
struct SampledClip {
    let indices: [Int]
    let totalFrames: Int
    let frames: [[UInt8]]
    let thumbnails: [UIImage]
}

/// Frames by index: the track's sample timestamps (AVAssetReader, no decoding of pixels), the
/// bundle's sampling rule, then AVAssetImageGenerator at exactly those times with the preferred
/// transform applied (display orientation), and the project's resize.
enum VideoFrameReader {
    static func read(_ url: URL, spec: Manifest.Video) async throws -> SampledClip {
        let asset = AVURLAsset(url: url)
        guard let track = try await asset.loadTracks(withMediaType: .video).first else {
            throw KitError("this file has no video track")
        }
        let times = try timestamps(asset: asset, track: track)
        guard !times.isEmpty else { throw KitError("this video has no decodable frames") }
        let indices = try FrameSampler.sample(totalFrames: times.count, numFrames: spec.frames, rule: spec.samplingRule)
        let generator = AVAssetImageGenerator(asset: asset)
        generator.appliesPreferredTrackTransform = true
        generator.requestedTimeToleranceBefore = .zero
        generator.requestedTimeToleranceAfter = .zero
        var decoded: [Int: ([UInt8], UIImage)] = [:]
        for i in Set(indices).sorted() {
            let image: CGImage
            do {
                image = try await generator.image(at: times[i]).image
            } catch {
                throw KitError("frame \(i) of \(times.count) could not be decoded (\(error.localizedDescription))")
            }
            let rgb = try rgbBytes(image)
            let resized = try FrameResizer.resize(rgb, width: image.width, height: image.height,
                                                  outWidth: spec.frameWidth, outHeight: spec.frameHeight)
            decoded[i] = (resized, UIImage(cgImage: image))
        }
        return SampledClip(indices: indices, totalFrames: times.count,
                           frames: indices.compactMap { decoded[$0]?.0 },
                           thumbnails: indices.compactMap { decoded[$0]?.1 })
    }

    /// Presentation times of every sample, sorted (Python's demux index, without decoding pixels).
    static func timestamps(asset: AVAsset, track: AVAssetTrack) throws -> [CMTime] {
        let reader: AVAssetReader
        do {
            reader = try AVAssetReader(asset: asset)
        } catch {
            throw KitError("this video cannot be read (\(error.localizedDescription))")
        }
        let output = AVAssetReaderTrackOutput(track: track, outputSettings: nil)
        output.alwaysCopiesSampleData = false
        reader.add(output)
        guard reader.startReading() else { throw KitError("this video cannot be read") }
        var times: [CMTime] = []
        while let sample = output.copyNextSampleBuffer() {
            if CMSampleBufferGetNumSamples(sample) > 0 { times.append(CMSampleBufferGetPresentationTimeStamp(sample)) }
        }
        return times.sorted { CMTimeCompare($0, $1) < 0 }
    }

    /// RGB bytes (HWC) of a CGImage, drawn into an 8-bit RGBA context.
    static func rgbBytes(_ image: CGImage) throws -> [UInt8] {
        let w = image.width
        let h = image.height
        var rgba = [UInt8](repeating: 0, count: w * h * 4)
        let drawn: Bool = rgba.withUnsafeMutableBytes { buf in
            guard let ctx = CGContext(data: buf.baseAddress, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4,
                                      space: CGColorSpaceCreateDeviceRGB(),
                                      bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drawn else { throw KitError("cannot convert a \(w)x\(h) frame to RGB") }
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for p in 0..<(w * h) {
            rgb[3 * p] = rgba[4 * p]
            rgb[3 * p + 1] = rgba[4 * p + 1]
            rgb[3 * p + 2] = rgba[4 * p + 2]
        }
        return rgb
    }
}
