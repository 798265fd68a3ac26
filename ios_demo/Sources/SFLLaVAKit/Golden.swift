import Foundation

/// One input to the stock runner, in order: BOS tokens, text, or the packed clip.
public enum RunnerInput: Codable, Equatable, Sendable {
    case tokens([Int])
    case text(String)
    case image

    enum CodingKeys: String, CodingKey { case kind, tokens, text }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "tokens": self = .tokens(try c.decode([Int].self, forKey: .tokens))
        case "text": self = .text(try c.decode(String.self, forKey: .text))
        case "image": self = .image
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown runner input kind '\(other)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .tokens(let ids):
            try c.encode("tokens", forKey: .kind)
            try c.encode(ids, forKey: .tokens)
        case .text(let s):
            try c.encode("text", forKey: .kind)
            try c.encode(s, forKey: .text)
        case .image:
            try c.encode("image", forKey: .kind)
        }
    }
}

/// `golden.json`: what the app's ports must reproduce (`sfllava_mobile.bundle.golden`).
public struct Golden: Codable, Equatable, Sendable {
    public struct FrameIndexCases: Codable, Equatable, Sendable {
        public let frames: Int
        public let rule: SamplingRule
        public let cases: [String: [Int]]
    }

    public struct PatternFrame: Codable, Equatable, Sendable {
        public let height: Int
        public let width: Int
    }

    public struct ResizeSmall: Codable, Equatable, Sendable {
        public let to: [Int]
        public let uint8Hwc: [Int]
        enum CodingKeys: String, CodingKey {
            case to
            case uint8Hwc = "uint8_hwc"
        }
    }

    public struct ResizeModel: Codable, Equatable, Sendable {
        public let to: [Int]
        public let sum: Int
        public let firstRowUint8Hwc: [Int]
        enum CodingKeys: String, CodingKey {
            case to, sum
            case firstRowUint8Hwc = "first_row_uint8_hwc"
        }
    }

    public struct PackedClip: Codable, Equatable, Sendable {
        public let frames: Int
        public let height: Int
        public let width: Int
        public let bytes: Int
        public let sha256: String
        public let firstBytes: [Int]
        enum CodingKeys: String, CodingKey {
            case frames, height, width, bytes, sha256
            case firstBytes = "first_bytes"
        }
    }

    public struct Prompt: Codable, Equatable, Sendable {
        public let question: String
        public let idsBeforeVideo: [Int]
        public let idsAfterVideo: [Int]
        public let textBeforeVideo: String
        public let textAfterVideo: String
        public let runnerInputs: [RunnerInput]
        enum CodingKeys: String, CodingKey {
            case question
            case idsBeforeVideo = "ids_before_video"
            case idsAfterVideo = "ids_after_video"
            case textBeforeVideo = "text_before_video"
            case textAfterVideo = "text_after_video"
            case runnerInputs = "runner_inputs"
        }
    }

    public struct Greedy: Codable, Equatable, Sendable {
        public let question: String
        public let clipFrames: Int
        public let maxNewTokens: Int
        public let tokens: [Int]
        public let imageSha256: String
        enum CodingKeys: String, CodingKey {
            case question, tokens
            case clipFrames = "clip_frames"
            case maxNewTokens = "max_new_tokens"
            case imageSha256 = "image_sha256"
        }
    }

    /// Two questions about the golden clip on one runner, as the app asks a follow-up.
    public struct Conversation: Codable, Equatable, Sendable {
        public let questions: [String]
        public let textNextTurn: String
        public let idsNextTurn: [Int]
        public let maxNewTokens: Int
        public let turn1Tokens: [Int]
        public let turn1Fed: Int
        public let turn2Tokens: [Int]
        /// Positions in use after the clip ("clip") and after each turn ("turn1", "turn2").
        public let positions: [String: Int]
        enum CodingKeys: String, CodingKey {
            case questions, positions
            case textNextTurn = "text_next_turn"
            case idsNextTurn = "ids_next_turn"
            case maxNewTokens = "max_new_tokens"
            case turn1Tokens = "turn1_tokens"
            case turn1Fed = "turn1_fed"
            case turn2Tokens = "turn2_tokens"
        }
    }

    public let frameIndices: FrameIndexCases
    public let frameIndicesSegmentMidpoint: FrameIndexCases
    public let patternFrame: PatternFrame
    public let resizeSmall: ResizeSmall
    public let resizeModel: ResizeModel
    public let packedClip: PackedClip
    public let prompt: Prompt
    public let greedy: Greedy
    public let conversation: Conversation

    enum CodingKeys: String, CodingKey {
        case prompt, greedy, conversation
        case frameIndices = "frame_indices"
        case frameIndicesSegmentMidpoint = "frame_indices_segment_midpoint"
        case patternFrame = "pattern_frame"
        case resizeSmall = "resize_small"
        case resizeModel = "resize_model"
        case packedClip = "packed_clip"
    }

    public static func parse(_ data: Data) throws -> Golden {
        try checkVersion(data, what: "golden")
        return try decode(data, what: "golden")
    }
}
