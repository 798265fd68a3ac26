import Foundation

/// One answer's timeline on one monotonic clock (seconds), as an engine measures it.
public struct AnswerTiming: Equatable, Sendable {
    public var start: Double
    public var framesDecoded: Double
    public var packed: Double
    public var visionDone: Double?
    public var firstToken: Double
    public var end: Double
    public var promptTokens: Int?
    public var generatedTokens: Int
    public var loadSeconds: Double?

    public init(start: Double, framesDecoded: Double, packed: Double, visionDone: Double? = nil, firstToken: Double,
                end: Double, promptTokens: Int?, generatedTokens: Int, loadSeconds: Double?) {
        self.start = start
        self.framesDecoded = framesDecoded
        self.packed = packed
        self.visionDone = visionDone
        self.firstToken = firstToken
        self.end = end
        self.promptTokens = promptTokens
        self.generatedTokens = generatedTokens
        self.loadSeconds = loadSeconds
    }

    public var timeToFirstToken: Double { firstToken - start }

    /// The `bench` schema's fields; decode rate over the tokens after the first.
    public func engineRun(note: String) -> EngineRun {
        var r = EngineRun()
        r.decodeVideoS = framesDecoded - start
        r.preprocessS = packed - framesDecoded
        r.loadS = loadSeconds
        if let v = visionDone {
            r.visionEncoderS = v - packed
            r.prefillS = firstToken - v
        } else {
            r.prefillS = firstToken - packed
        }
        r.promptTokens = promptTokens
        if let p = promptTokens, let s = r.prefillS, s > 0 { r.prefillTokensPerSecond = Double(p) / s }
        r.generatedTokens = generatedTokens
        r.decodeS = end - firstToken
        if generatedTokens > 1, end > firstToken { r.decodeTokensPerSecond = Double(generatedTokens - 1) / (end - firstToken) }
        r.timeToFirstTokenS = timeToFirstToken
        r.wallS = end - start
        r.note = note
        return r
    }
}

/// When a clip went into an engine (seconds on the answer clock): packed, encoded (if the engine
/// can tell), in the engine and ready for questions.
public struct ClipTiming: Equatable, Sendable {
    public var packed: Double
    public var visionDone: Double?
    public var ready: Double

    public init(packed: Double, visionDone: Double?, ready: Double) {
        self.packed = packed
        self.visionDone = visionDone
        self.ready = ready
    }
}

/// What an engine hands back for one question.
public struct EngineAnswer: Sendable {
    public let text: String
    public let stopReason: StopReason
    public let timing: AnswerTiming
}

/// The two engines behind one protocol: ExecuTorch's multimodal runner and the Core ML packages.
/// Each holds a conversation about one clip: `loadClip` resets it and takes the clip, `ask` answers
/// one question (the first, or a follow-up that re-encodes nothing). Implementations are not
/// thread-safe; the app calls them from one background queue only.
public protocol VideoQAEngine: AnyObject {
    /// `executorch_runner` or `coreml`: the `bench` report's engine name.
    var name: String { get }
    /// What the engine's seconds mean (the `bench` report's engine note).
    var note: String { get }
    /// Seconds the last load took.
    var loadSeconds: Double { get }
    /// The conversation on this engine: turns so far and the context left.
    var conversation: Conversation { get }
    /// Resets the engine and takes the clip `frames` (HWC frames at the model's size).
    func loadClip(frames: [[UInt8]]) throws -> ClipTiming
    /// Answers `question` about the loaded clip; throws `ContextFull` before any work when the turn
    /// and its answer would not fit. `clip`: the clip's timing when it was loaded for this question.
    func ask(_ question: String, start: Double, framesDecoded: Double, clip: ClipTiming?,
             onText: @escaping (String) -> Void) throws -> EngineAnswer
    /// Ends a running answer; safe from any thread.
    func stop()
}
