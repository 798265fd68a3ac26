import Foundation

/// One answer's stage timings, the `bench` schema's per-run fields (`schema/bench.schema.json`).
public struct EngineRun: Codable, Equatable, Sendable {
    public var decodeVideoS: Double?
    public var preprocessS: Double?
    public var loadS: Double?
    public var visionEncoderS: Double?
    public var promptTokens: Int?
    public var prefillS: Double?
    public var decodeS: Double?
    public var generatedTokens: Int?
    public var prefillTokensPerSecond: Double?
    public var decodeTokensPerSecond: Double?
    public var timeToFirstTokenS: Double?
    /// A follow-up about the same clip, asked after the first answer: its turn's prefill and first token.
    public var followupTimeToFirstTokenS: Double?
    public var followupPromptTokens: Int?
    public var wallS: Double?
    public var peakRssMb: Double?
    public var note: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case note
        case decodeVideoS = "decode_video_s"
        case preprocessS = "preprocess_s"
        case loadS = "load_s"
        case visionEncoderS = "vision_encoder_s"
        case promptTokens = "prompt_tokens"
        case prefillS = "prefill_s"
        case decodeS = "decode_s"
        case generatedTokens = "generated_tokens"
        case prefillTokensPerSecond = "prefill_tokens_per_second"
        case decodeTokensPerSecond = "decode_tokens_per_second"
        case timeToFirstTokenS = "time_to_first_token_s"
        case followupTimeToFirstTokenS = "followup_time_to_first_token_s"
        case followupPromptTokens = "followup_prompt_tokens"
        case wallS = "wall_s"
        case peakRssMb = "peak_rss_mb"
    }
}

/// The medians of several runs, with every run listed.
public struct EngineResult: Encodable, Sendable {
    public let summary: EngineRun
    public let repeats: Int?
    public let runs: [EngineRun]?

    public func encode(to encoder: Encoder) throws {
        try summary.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(repeats, forKey: .repeats)
        try c.encodeIfPresent(runs, forKey: .runs)
    }

    enum CodingKeys: String, CodingKey { case repeats, runs }
}

public struct DeviceInfo: Codable, Equatable, Sendable {
    public let name: String
    public let os: String
    public let abi: String?
    public let memoryMb: Int?

    public init(name: String, os: String, abi: String?, memoryMb: Int?) {
        self.name = name
        self.os = os
        self.abi = abi
        self.memoryMb = memoryMb
    }

    enum CodingKeys: String, CodingKey {
        case name, os, abi
        case memoryMb = "memory_mb"
    }
}

/// The host `bench` JSON from the phone: `sfllava-mobile bench --json` writes the same schema.
public struct BenchReport: Encodable, Sendable {
    public let benchVersion = 1
    public let bundle: String
    public let backend: String
    public let video: String
    public let steps: Int
    public let threads: Int
    public let model: String
    public let recipe: String
    public let frames: Int
    public let visualTokens: Int
    public let artifactBytes: Int
    public let device: DeviceInfo
    public let engines: [String: EngineResult]
    public let engineNotes: [String: String]

    enum CodingKeys: String, CodingKey {
        case bundle, backend, video, steps, threads, model, recipe, frames, device, engines
        case benchVersion = "bench_version"
        case visualTokens = "visual_tokens"
        case artifactBytes = "artifact_bytes"
        case engineNotes = "engine_notes"
    }

    public init(manifest: Manifest, bundle: String, video: String, steps: Int, threads: Int, device: DeviceInfo,
                engine: String, note: String, runs: [EngineRun]) {
        self.bundle = bundle
        backend = manifest.backend
        self.video = video
        self.steps = steps
        self.threads = threads
        model = manifest.model.name
        recipe = manifest.quantization.recipe
        frames = manifest.video.frames
        visualTokens = manifest.visualTokens
        artifactBytes = manifest.size.totalBytes
        self.device = device
        engines = [engine: EngineResult(summary: Self.medians(runs), repeats: runs.count > 1 ? runs.count : nil,
                                        runs: runs.count > 1 ? runs : nil)]
        engineNotes = [engine: note]
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Field-wise medians; a field is kept only when every run has it.
    static func medians(_ runs: [EngineRun]) -> EngineRun {
        func m(_ key: KeyPath<EngineRun, Double?>) -> Double? {
            let v = runs.compactMap { $0[keyPath: key] }
            return v.count == runs.count ? median(v) : nil
        }
        func mi(_ key: KeyPath<EngineRun, Int?>) -> Int? {
            let v = runs.compactMap { $0[keyPath: key] }.map(Double.init)
            return v.count == runs.count ? median(v).map { Int($0.rounded()) } : nil
        }
        var r = EngineRun()
        r.decodeVideoS = m(\.decodeVideoS)
        r.preprocessS = m(\.preprocessS)
        r.loadS = m(\.loadS)
        r.visionEncoderS = m(\.visionEncoderS)
        r.promptTokens = mi(\.promptTokens)
        r.prefillS = m(\.prefillS)
        r.decodeS = m(\.decodeS)
        r.generatedTokens = mi(\.generatedTokens)
        r.prefillTokensPerSecond = m(\.prefillTokensPerSecond)
        r.decodeTokensPerSecond = m(\.decodeTokensPerSecond)
        r.timeToFirstTokenS = m(\.timeToFirstTokenS)
        r.followupTimeToFirstTokenS = m(\.followupTimeToFirstTokenS)
        r.followupPromptTokens = mi(\.followupPromptTokens)
        r.wallS = m(\.wallS)
        r.peakRssMb = m(\.peakRssMb)
        r.note = runs.first?.note
        return r
    }
}
