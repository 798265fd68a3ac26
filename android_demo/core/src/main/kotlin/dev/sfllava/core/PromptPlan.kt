package dev.sfllava.core

/**
 * How the first question about a clip goes into the stock runner (`LlmModule` on Android), from the manifest's template:
 * [inputs] in order (BOS tokens where the template has one, the text before the video, the packed
 * clip, the text after the question), the same list `golden.json` states as `runner_inputs`.
 *
 * Runner behaviour the app must handle (README, "Runner contract"): `LlmModule` has no token-id
 * input, so BOS is asked for with `numBos` at construction and the runner's tokenizer prepends it to
 * the first text; a first answer token that is EOS does not stop generation, and the EOS piece itself
 * reaches the callback, so [TokenStream] watches for [eosPieces] and the app calls `stop()`.
 */
class PromptPlan private constructor(
    val question: String,
    val textBeforeVideo: String,
    val textAfterVideo: String,
    val bosId: Int?,
    val eosIds: List<Int>,
    val eosPieces: List<String>,
    /** Tokens the app lets the runner produce before it stops it (the manifest's `max_new_tokens`). */
    val maxNewTokens: Int,
    /** `seqLen` for `LlmModule.generate`: the runner stops at min(seqLen, context) minus prompt length. */
    val seqLen: Int
) {
    /** BOS tokens to request from the runner (`LlmModule(..., numBos, numEos)`). */
    val numBos: Int get() = if (bosId == null) 0 else 1

    init {
        require(maxNewTokens >= 1) { "maxNewTokens must be >= 1" }
    }

    val inputs: List<RunnerInput>
        get() =
            buildList {
                if (bosId != null) add(RunnerInput.Tokens(listOf(bosId)))
                if (textBeforeVideo.isNotEmpty()) add(RunnerInput.Text(textBeforeVideo))
                add(RunnerInput.Image)
                add(RunnerInput.Text(textAfterVideo))
            }

    companion object {
        /** Fails with a [BundleException] on a blank question or one holding the video placeholder. */
        fun build(manifest: Manifest, question: String): PromptPlan {
            val q = Conversation.cleanQuestion(question)
            val p = manifest.prompt
            if (p.questionPlaceholder !in p.textAfterVideo) {
                throw BundleException("manifest.prompt.text_after_video has no ${p.questionPlaceholder} to put the question in")
            }
            return PromptPlan(
                question = q,
                textBeforeVideo = p.textBeforeVideo,
                textAfterVideo = p.textAfterVideo.replace(p.questionPlaceholder, q),
                bosId = p.bosId,
                eosIds = p.eosIds,
                eosPieces = p.eosPieces,
                maxNewTokens = manifest.context.maxNewTokens,
                seqLen = manifest.context.maxContextLen
            )
        }
    }
}
