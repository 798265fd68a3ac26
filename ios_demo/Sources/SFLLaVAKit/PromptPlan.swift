import Foundation

/// How one question goes into a runner, from the manifest's template: `inputs` in order (BOS tokens
/// where the template has one, the text before the video, the packed clip, the text after), the
/// list `golden.json` states as `runner_inputs`. The runner quirks it carries (README, "Runner
/// contract"): the ExecuTorch runner takes no token ids from Swift, so BOS is asked for with
/// `Config.bosCount` (the bundle's tokenizer post-processor adds it); a first answer token that is
/// EOS does not stop generation and the EOS piece reaches the callback, so `TokenStream` watches for
/// `eosPieces` and the engine calls `stop()`.
public struct PromptPlan: Equatable, Sendable {
    public static let imagePlaceholder = "<image>"

    public let question: String
    public let textBeforeVideo: String
    public let textAfterVideo: String
    public let bosId: Int?
    public let eosIds: [Int]
    public let eosPieces: [String]
    /// Tokens the app lets the runner produce (the manifest's `max_new_tokens`).
    public let maxNewTokens: Int
    /// The runner's sequence length: it stops at this position at the latest.
    public let seqLen: Int

    public var numBos: Int { bosId == nil ? 0 : 1 }

    public var inputs: [RunnerInput] {
        var out: [RunnerInput] = []
        if let bos = bosId { out.append(.tokens([bos])) }
        if !textBeforeVideo.isEmpty { out.append(.text(textBeforeVideo)) }
        out.append(.image)
        out.append(.text(textAfterVideo))
        return out
    }

    /// Throws on a blank question or one holding the video placeholder.
    public init(manifest: Manifest, question raw: String) throws {
        let q = try Conversation.cleanQuestion(raw)
        let p = manifest.prompt
        guard p.textAfterVideo.contains(p.questionPlaceholder) else {
            throw KitError("manifest.prompt.text_after_video has no \(p.questionPlaceholder) to put the question in")
        }
        question = q
        textBeforeVideo = p.textBeforeVideo
        textAfterVideo = p.textAfterVideo.replacingOccurrences(of: p.questionPlaceholder, with: q)
        bosId = p.bosId
        eosIds = p.eosIds
        eosPieces = p.eosPieces
        maxNewTokens = manifest.context.maxNewTokens
        seqLen = manifest.context.maxContextLen
    }
}
