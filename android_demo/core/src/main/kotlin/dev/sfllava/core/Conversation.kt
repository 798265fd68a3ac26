package dev.sfllava.core

import java.nio.charset.StandardCharsets

/** A question that would not fit the runner's context: the app offers to start over. */
class ContextFullException(message: String) : BundleException(message)

/** One planned question: the `LlmModule` calls to make and what the app needs to close the turn. */
class PlannedTurn(
    val question: String,
    /** The text the runner gets for this turn (the text after the video, or the manifest's `text_next_turn`). */
    val text: String,
    val calls: List<RunnerCall>,
    /** An upper bound on the positions this turn's text takes (the app has no tokenizer). */
    val textTokenBound: Int
)

/**
 * One clip, many questions on the stock runner (`LlmModule`), which keeps its position between
 * `generate` calls unless reset:
 *
 * 1. [clipCalls] (after `resetContext()`): the text before the video (BOS through `numBos`) and the
 *    packed clip, prefilled once, while the user types.
 * 2. [planTurn] for each question: the first one's text after the video, then `text_next_turn` (the
 *    previous answer closed, the next user turn opened); one `generate` call each, nothing re-encoded.
 * 3. [finishTurn] with the runner's stats: the position it reports becomes the conversation's.
 *
 * The context is checked before a turn ([planTurn] throws [ContextFullException], one sentence):
 * the turn's text and a whole answer (`maxNewTokens`) must fit in `max_context_len`. Token counts are
 * bounded from above by UTF-8 bytes + 1 (byte-level BPE and byte-fallback SentencePiece never make
 * more tokens than bytes; a SentencePiece prefix space may add one), so a refusal is never late.
 */
class Conversation(private val manifest: Manifest) {
    val maxContextLen: Int get() = manifest.context.maxContextLen
    val maxNewTokens: Int get() = manifest.context.maxNewTokens

    /** Runner positions in use: exact after a turn whose stats arrived, an upper bound otherwise. */
    var position: Int = 0
        private set

    /** Questions answered since the clip was loaded. */
    var turns: Int = 0
        private set

    var clipLoaded: Boolean = false
        private set

    val remaining: Int get() = maxContextLen - position

    /** The calls that put the clip into a freshly reset runner; the conversation starts over. */
    fun clipCalls(): List<RunnerCall> {
        val (w, h) = manifest.packedImageSize()
        val before = manifest.prompt.textBeforeVideo
        position = manifest.numBos + (if (before.isEmpty()) 0 else tokenBound(before)) + manifest.visualTokens
        turns = 0
        clipLoaded = true
        return buildList {
            // LlmModule takes no token ids: numBos at construction adds BOS to the first text.
            if (before.isNotEmpty()) add(RunnerCall.PrefillText(before))
            add(RunnerCall.PrefillImage(w, h, 3))
        }
    }

    /** The next question's calls, or [ContextFullException] when it and its answer would not fit. */
    fun planTurn(question: String): PlannedTurn {
        if (!clipLoaded) throw BundleException("load a clip first")
        val q = cleanQuestion(question)
        val p = manifest.prompt
        val text = (if (turns == 0) p.textAfterVideo else p.textNextTurn).replace(p.questionPlaceholder, q)
        val bound = tokenBound(text)
        if (position + bound + maxNewTokens > maxContextLen) {
            throw ContextFullException(
                "This question and its answer need up to ${bound + maxNewTokens} positions, but only $remaining of the " +
                    "$maxContextLen this model holds are left after $turns answer(s): start over to keep asking about this clip."
            )
        }
        return PlannedTurn(q, text, listOf(RunnerCall.Generate(text, manifest.context.maxContextLen)), bound)
    }

    /**
     * Closes [turn]: the runner's [stats] give the exact position (prompt tokens, counted from 0, plus
     * the tokens it fed back); without them the bound is kept ([emittedTokens] pieces all counted).
     */
    fun finishTurn(turn: PlannedTurn, stats: RunnerStats?, emittedTokens: Int) {
        position = stats?.let { it.promptTokens + it.generatedTokens } ?: (position + turn.textTokenBound + emittedTokens)
        turns += 1
    }

    /** Forget the clip and the questions; the app resets the runner and sends [clipCalls] again. */
    fun startOver() {
        position = 0
        turns = 0
        clipLoaded = false
    }

    companion object {
        const val IMAGE_PLACEHOLDER = "<image>"

        /** Python's str.strip() and the same refusals as the toolkit's prompt module. */
        fun cleanQuestion(question: String): String {
            val q = question.trim { it.isWhitespace() }
            if (q.isEmpty()) throw BundleException("ask a question first")
            if (IMAGE_PLACEHOLDER in q) throw BundleException("the question must not contain $IMAGE_PLACEHOLDER: the video goes there")
            return q
        }

        /** At least as many positions as the runner's tokenizer makes of [text] (see the class comment). */
        fun tokenBound(text: String): Int = text.toByteArray(StandardCharsets.UTF_8).size + 1
    }
}
