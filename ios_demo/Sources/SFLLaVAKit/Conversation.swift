import Foundation

/// A question that would not fit the engine's context: the app offers to start over.
public struct ContextFull: Error, LocalizedError, Equatable, Sendable {
    public let message: String
    public var errorDescription: String? { message }
}

/// One planned question: the text the engine gets for it and a bound on its tokens.
public struct PlannedTurn: Equatable, Sendable {
    public let question: String
    /// The first question's text after the video, or the manifest's `text_next_turn` for a follow-up.
    public let text: String
    public let isFollowUp: Bool
    /// At least as many positions as the engine's tokenizer makes of `text`.
    public let textTokenBound: Int
}

/// One clip, many questions: the clip is encoded and prefilled once (`clipInputs`), each question is
/// one turn (`planTurn`): the first question's text after the video, then the manifest's
/// `text_next_turn` (the previous answer closed, the next user turn opened); the engine keeps its
/// position (the ExecuTorch runner without `reset()`, the Core ML state) between turns.
///
/// The context is checked before a turn: the turn's text and a whole answer (`maxNewTokens`) must fit
/// in `max_context_len`, else `ContextFull` (one sentence). Without a tokenizer (the ExecuTorch
/// engine), token counts are bounded by UTF-8 bytes + 1 (byte-level BPE and byte-fallback
/// SentencePiece never make more tokens than bytes; a prefix space may add one). The same rules as
/// the Kotlin core's `Conversation` and the toolkit's `sfllava_mobile.conversation`.
public struct Conversation: Sendable {
    public let manifest: Manifest
    /// Positions in use: exact after a turn whose engine reported it, an upper bound otherwise.
    public private(set) var position = 0
    public private(set) var turns = 0
    public private(set) var clipLoaded = false

    public init(manifest: Manifest) {
        self.manifest = manifest
    }

    public var maxContextLen: Int { manifest.context.maxContextLen }
    public var maxNewTokens: Int { manifest.context.maxNewTokens }
    public var remaining: Int { maxContextLen - position }

    /// The inputs that put the clip into a freshly reset engine (BOS, text before the video, the clip);
    /// the conversation starts over. `exactPosition`: what the engine counted, when it tokenizes itself.
    public mutating func clipInputs(exactPosition: Int? = nil) -> [RunnerInput] {
        let p = manifest.prompt
        var out: [RunnerInput] = []
        if let bos = p.bosId { out.append(.tokens([bos])) }
        if !p.textBeforeVideo.isEmpty { out.append(.text(p.textBeforeVideo)) }
        out.append(.image)
        let before = p.textBeforeVideo.isEmpty ? 0 : Self.tokenBound(p.textBeforeVideo)
        position = exactPosition ?? ((p.bosId == nil ? 0 : 1) + before + manifest.visualTokens)
        turns = 0
        clipLoaded = true
        return out
    }

    /// The next question's turn, or `ContextFull` when it and its answer would not fit.
    public func planTurn(_ question: String) throws -> PlannedTurn {
        guard clipLoaded else { throw KitError("load a clip first") }
        let q = try Self.cleanQuestion(question)
        let p = manifest.prompt
        let template = turns == 0 ? p.textAfterVideo : p.textNextTurn
        let text = template.replacingOccurrences(of: p.questionPlaceholder, with: q)
        let bound = Self.tokenBound(text)
        if position + bound + maxNewTokens > maxContextLen {
            throw ContextFull(message: "This question and its answer need up to \(bound + maxNewTokens) positions, but only "
                + "\(remaining) of the \(maxContextLen) this model holds are left after \(turns) answer(s): "
                + "start over to keep asking about this clip.")
        }
        return PlannedTurn(question: q, text: text, isFollowUp: turns > 0, textTokenBound: bound)
    }

    /// Closes `turn`: `exactPosition` when the engine knows it, else the bound (`emittedTokens` all counted).
    public mutating func finishTurn(_ turn: PlannedTurn, exactPosition: Int?, emittedTokens: Int) {
        position = exactPosition ?? (position + turn.textTokenBound + emittedTokens)
        turns += 1
    }

    /// Forget the clip and the questions; the engine resets and takes `clipInputs()` again.
    public mutating func startOver() {
        position = 0
        turns = 0
        clipLoaded = false
    }

    /// Python's str.strip() and the same refusals as the toolkit's prompt module.
    public static func cleanQuestion(_ raw: String) throws -> String {
        let q = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !q.isEmpty else { throw KitError("ask a question first") }
        guard !q.contains(PromptPlan.imagePlaceholder) else {
            throw KitError("the question must not contain \(PromptPlan.imagePlaceholder): the video goes there")
        }
        return q
    }

    public static func tokenBound(_ text: String) -> Int { text.utf8.count + 1 }

}
