import Foundation

/// The bundle schema version this code reads (`schema/manifest.schema.json`, `sfllava_mobile.manifest`).
public let schemaVersion = 4

/// Method names of the on-device contract.
public let methodNames = ["vision_encoder", "token_embedding", "text_decoder"]

/// A tensor dimension: a number, or a symbolic one such as "S" or "1..64".
public enum Dim: Codable, Equatable, Sendable {
    case fixed(Int)
    case symbolic(String)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) {
            self = .fixed(n)
        } else {
            self = .symbolic(try c.decode(String.self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .fixed(let n): try c.encode(n)
        case .symbolic(let s): try c.encode(s)
        }
    }
}

public struct TensorSpec: Codable, Equatable, Sendable {
    public let name: String?
    public let dtype: String
    public let shape: [Dim]
    public let layout: String?
}

public struct MethodSpec: Codable, Equatable, Sendable {
    public let artifact: String
    public let function: String?
    public let inputs: [TensorSpec]
    public let output: TensorSpec
}

public struct Manifest: Codable, Equatable, Sendable {
    public struct Model: Codable, Equatable, Sendable {
        public let name: String
        public let family: String
    }

    public struct Normalization: Codable, Equatable, Sendable {
        public let inGraph: Bool
        enum CodingKeys: String, CodingKey { case inGraph = "in_graph" }
    }

    public struct Video: Codable, Equatable, Sendable {
        public let frames: Int
        public let frameHeight: Int
        public let frameWidth: Int
        public let samplingRule: SamplingRule
        public let normalization: Normalization
        enum CodingKeys: String, CodingKey {
            case frames, normalization
            case frameHeight = "frame_height"
            case frameWidth = "frame_width"
            case samplingRule = "sampling_rule"
        }
    }

    public struct Prompt: Codable, Equatable, Sendable {
        public let template: String
        public let textBeforeVideo: String
        public let textAfterVideo: String
        public let questionPlaceholder: String
        public let system: String?
        public let answerPrefix: String
        public let bosId: Int?
        public let eosIds: [Int]
        public let eosPieces: [String]
        /// A follow-up's runner text (`questionPlaceholder` to substitute): closes the answer, opens the next user turn.
        public let textNextTurn: String
        enum CodingKeys: String, CodingKey {
            case template, system
            case textBeforeVideo = "text_before_video"
            case textAfterVideo = "text_after_video"
            case questionPlaceholder = "question_placeholder"
            case answerPrefix = "answer_prefix"
            case bosId = "bos_id"
            case eosIds = "eos_ids"
            case eosPieces = "eos_pieces"
            case textNextTurn = "text_next_turn"
        }
    }

    public struct Context: Codable, Equatable, Sendable {
        public let maxSeqLen: Int
        public let maxContextLen: Int
        public let textAllowance: Int
        public let maxNewTokens: Int
        public let turns: Int
        public let prefillChunk: Int?
        enum CodingKeys: String, CodingKey {
            case turns
            case maxSeqLen = "max_seq_len"
            case maxContextLen = "max_context_len"
            case textAllowance = "text_allowance"
            case maxNewTokens = "max_new_tokens"
            case prefillChunk = "prefill_chunk"
        }
    }

    public struct Quantization: Codable, Equatable, Sendable {
        public let recipe: String
    }

    public struct Size: Codable, Equatable, Sendable {
        public let totalBytes: Int
        enum CodingKeys: String, CodingKey { case totalBytes = "total_bytes" }
    }

    public struct KernelLibrary: Codable, Equatable, Sendable {
        public let name: String
        public let ios: String
        public let methods: [String]
    }

    public struct ExecuTorch: Codable, Equatable, Sendable {
        public let program: String
        /// External data file (`.ptd`) part of the program's weights live in (`export --shared-table`).
        public let data: String?
        public let kernelLibraries: [KernelLibrary]
        enum CodingKeys: String, CodingKey {
            case program, data
            case kernelLibraries = "kernel_libraries"
        }
    }

    public struct CoreMLState: Codable, Equatable, Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
    }

    public struct CoreML: Codable, Equatable, Sendable {
        public let minimumDeploymentTarget: String
        public let computePrecision: String
        public let packages: [String: String]
        public let functions: [String: [String]]
        public let states: [CoreMLState]
        public let callSequence: String
        enum CodingKeys: String, CodingKey {
            case packages, functions, states
            case minimumDeploymentTarget = "minimum_deployment_target"
            case computePrecision = "compute_precision"
            case callSequence = "call_sequence"
        }
    }

    public let schemaVersion: Int
    public let toolkitVersion: String
    public let backend: String
    public let model: Model
    public let video: Video
    public let visualTokens: Int
    public let prompt: Prompt
    public let artifacts: [String: String]
    public let methods: [String: MethodSpec]
    public let context: Context
    public let quantization: Quantization
    public let size: Size
    public let executorch: ExecuTorch?
    public let coreml: CoreML?

    enum CodingKeys: String, CodingKey {
        case backend, model, video, prompt, artifacts, methods, context, quantization, size, executorch, coreml
        case schemaVersion = "schema_version"
        case toolkitVersion = "toolkit_version"
        case visualTokens = "visual_tokens"
    }

    /// Parses and checks `manifest.json`; another schema version or shape is a `KitError`.
    public static func parse(_ data: Data) throws -> Manifest {
        try checkVersion(data, what: "manifest")
        let m: Manifest = try decode(data, what: "manifest")
        let missing = methodNames.filter { m.methods[$0] == nil }
        guard missing.isEmpty else { throw KitError("manifest.methods: missing \(missing.joined(separator: ", "))") }
        guard !m.prompt.eosIds.isEmpty, m.prompt.eosIds.count == m.prompt.eosPieces.count else {
            throw KitError("manifest.prompt: eos_ids and eos_pieces must be non-empty and the same length")
        }
        guard m.backend == "executorch" || m.backend == "coreml" else {
            throw KitError("manifest.backend: '\(m.backend)' is not one of executorch, coreml")
        }
        guard (m.backend == "executorch" ? m.executorch != nil : m.coreml != nil) else {
            throw KitError("manifest: a \(m.backend) bundle needs its '\(m.backend)' section")
        }
        return m
    }

    /// BOS tokens to ask the runner for (ExecuTorch's Swift runner has no token-id input).
    public var numBos: Int { prompt.bosId == nil ? 0 : 1 }

    /// The image the ExecuTorch runner gets: width W, height T*H, 3 channels.
    public var packedImageSize: (width: Int, height: Int) { (video.frameWidth, video.frames * video.frameHeight) }
}

struct Versioned: Decodable {
    let schemaVersion: Int
    enum CodingKeys: String, CodingKey { case schemaVersion = "schema_version" }
}

func checkVersion(_ data: Data, what: String) throws {
    let v: Versioned = try decode(data, what: what)
    guard v.schemaVersion == schemaVersion else {
        throw KitError("\(what) has schema_version \(v.schemaVersion); this app reads \(schemaVersion): "
            + "re-export the bundle with a matching sfllava-mobile")
    }
}

/// JSONDecoder with errors that name the field path ("manifest.video.frames: missing").
func decode<T: Decodable>(_ data: Data, what: String) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.keyNotFound(key, ctx) {
        throw KitError("\(path(what, ctx.codingPath + [key])): missing")
    } catch let DecodingError.typeMismatch(_, ctx) {
        throw KitError("\(path(what, ctx.codingPath)): \(ctx.debugDescription)")
    } catch let DecodingError.valueNotFound(_, ctx) {
        throw KitError("\(path(what, ctx.codingPath)): missing")
    } catch let DecodingError.dataCorrupted(ctx) {
        throw KitError(ctx.codingPath.isEmpty ? "\(what) is not valid JSON" : "\(path(what, ctx.codingPath)): \(ctx.debugDescription)")
    }
}

private func path(_ root: String, _ keys: [CodingKey]) -> String {
    ([root] + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }).joined(separator: ".")
}
