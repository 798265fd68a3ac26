package dev.sfllava.demo

import dev.sfllava.core.AnswerTiming
import dev.sfllava.core.BundleFolder
import dev.sfllava.core.Conversation
import dev.sfllava.core.ProcStatus
import dev.sfllava.core.RunnerCall
import dev.sfllava.core.RunnerStats
import dev.sfllava.core.StopReason
import dev.sfllava.core.TallImage
import dev.sfllava.core.TokenStream
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule

/** What one answer produced. */
class Answer(val text: String, val tokens: Int, val stopReason: StopReason, val timing: AnswerTiming, val error: String?)

/**
 * ExecuTorch's stock `LlmModule` on a bundle, holding a conversation about one clip: the runner keeps
 * its position between `generate` calls, so the clip is prefilled once ([loadClip]) and each question
 * is one turn ([ask]). Not thread-safe: the app calls it from one background executor only. The calls
 * come from core's [Conversation], the same lists the Linux replay test feeds to the C++ runner.
 */
class LlmEngine(private val bundle: BundleFolder) : Closeable {
    private val module =
        LlmModule(
            LlmModule.MODEL_TYPE_MULTIMODAL,
            bundle.program.absolutePath,
            bundle.tokenizer.absolutePath,
            0f, // greedy, as the golden tokens and parity were taken
            bundle.data?.absolutePath, // the external weights file, when the bundle has one
            bundle.manifest.numBos,
            0
        )

    var loadSeconds: Double = 0.0
        private set

    /** Loads the program (seconds are kept for the stats); throws ExecutorchRuntimeException on a bad program. */
    fun load() {
        val t0 = System.nanoTime()
        module.load()
        loadSeconds = (System.nanoTime() - t0) / 1e9
    }

    /** The conversation on this runner: the clip's calls, each turn's, and the context left. */
    val conversation = Conversation(bundle.manifest)

    /**
     * Resets the runner and prefills the clip [frames] (HWC frames at the model's size) with the text
     * before the video: done once per clip, before or while the user types the first question.
     */
    fun loadClip(frames: List<ByteArray>) {
        val v = bundle.manifest.video
        val packed = TallImage.pack(frames, v.frameWidth, v.frameHeight)
        val image = ByteBuffer.allocateDirect(packed.size).order(ByteOrder.nativeOrder()).put(packed)
        image.rewind()
        module.resetContext()
        for (call in conversation.clipCalls()) {
            when (call) {
                is RunnerCall.PrefillText -> module.prefillPrompt(call.text)
                is RunnerCall.PrefillImage -> module.prefillImages(image, call.width, call.height, call.channels)
                is RunnerCall.Generate -> error("a clip has no generate call")
            }
        }
    }

    /**
     * Answers [question] about the loaded clip: the first question's text after the video, then
     * follow-ups as one turn each (nothing re-encoded). Throws [ContextFullException] before any call
     * when the turn would not fit. [onText] gets the answer so far, batched; [startMs] is when the user
     * asked, [clipReadyMs] when the clip was in the runner (the same for a follow-up).
     */
    fun ask(question: String, startMs: Long, framesDecodedMs: Long, clipReadyMs: Long, onText: (String) -> Unit): Answer {
        val turn = conversation.planTurn(question)
        val stream = TokenStream(bundle.manifest.prompt.eosPieces, conversation.maxNewTokens, onUpdate = onText)
        var firstTokenMs = -1L
        var runnerStats: RunnerStats? = null
        var error: String? = null
        val callback =
            object : LlmCallback {
                override fun onResult(result: String) {
                    if (firstTokenMs < 0) firstTokenMs = nowMs()
                    // EOS (even as the first token) or the token budget: stop the runner ourselves.
                    if (!stream.accept(result)) module.stop()
                }

                override fun onStats(stats: String) {
                    runnerStats = runCatching { RunnerStats.parse(stats) }.getOrNull()
                }

                override fun onError(errorCode: Int, message: String) {
                    error = "runner error $errorCode: $message"
                }
            }
        for (call in turn.calls) {
            if (call is RunnerCall.Generate) module.generate(call.text, call.seqLen, callback, false)
        }
        val text = stream.finish()
        conversation.finishTurn(turn, runnerStats, stream.tokens)
        val end = nowMs()
        val timing =
            AnswerTiming(
                startMs = startMs,
                framesDecodedMs = framesDecodedMs,
                packedMs = clipReadyMs,
                firstTokenMs = if (firstTokenMs < 0) end else firstTokenMs,
                endMs = end,
                stats = runnerStats,
                loadSeconds = loadSeconds,
                peakRssMb = ProcStatus.peakRssMb()
            )
        return Answer(text, stream.tokens, stream.stopReason, timing, error)
    }

    /** Ends a running generate(); LlmModule allows this from any thread. */
    fun stopGeneration() = module.stop()

    override fun close() = module.close()

    companion object {
        fun nowMs(): Long = System.nanoTime() / 1_000_000
    }
}
