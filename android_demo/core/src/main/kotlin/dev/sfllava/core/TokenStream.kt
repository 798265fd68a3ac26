package dev.sfllava.core

import java.nio.ByteBuffer
import java.nio.CharBuffer
import java.nio.charset.CodingErrorAction
import java.nio.charset.StandardCharsets

/** Why a [TokenStream] ended. */
enum class StopReason { RUNNING, EOS, MAX_NEW_TOKENS, FINISHED }

/**
 * Assembles the runner's streamed pieces into the answer: bytes are held back until they complete a
 * UTF-8 character (a piece may end inside one), an EOS piece ends the answer and is not shown (the
 * runner passes it on, even as the first token), at most [maxNewTokens] pieces are taken, and the UI
 * gets the text in batches no more often than every [batchMillis] ([clockMillis] is injectable for tests).
 */
class TokenStream(
    eosPieces: Collection<String>,
    private val maxNewTokens: Int,
    private val batchMillis: Long = 50,
    private val clockMillis: () -> Long = { System.nanoTime() / 1_000_000 },
    private val onUpdate: (String) -> Unit = {}
) {
    private val eos = eosPieces.filter { it.isNotEmpty() }
    private val text = StringBuilder()
    private var pending = ByteArray(0)
    private var lastFlush = Long.MIN_VALUE
    private var flushedLength = 0

    var tokens = 0
        private set
    var stopReason = StopReason.RUNNING
        private set

    /** The answer so far (complete characters only). */
    val answer: String get() = text.toString()

    val stopped: Boolean get() = stopReason != StopReason.RUNNING

    /** One piece as text (Android's JNI has already completed its UTF-8). Returns false when the app should stop the runner. */
    fun accept(piece: String): Boolean = acceptBytes(piece.toByteArray(StandardCharsets.UTF_8))

    /** One piece as raw bytes (a runner that hands out token bytes). Returns false when the app should stop the runner. */
    fun acceptBytes(piece: ByteArray): Boolean {
        if (stopped) return false
        tokens += 1
        val joined = pending + piece
        val asText = String(joined, StandardCharsets.UTF_8)
        val hit = eos.firstOrNull { asText.endsWith(it) }
        if (hit != null) {
            // Whatever came before the EOS piece in the same callback is still answer text.
            appendComplete(joined.copyOf(joined.size - hit.toByteArray(StandardCharsets.UTF_8).size), final = true)
            return end(StopReason.EOS)
        }
        appendComplete(joined, final = false)
        if (tokens >= maxNewTokens) return end(StopReason.MAX_NEW_TOKENS)
        maybeFlush(force = false)
        return true
    }

    /** The runner returned: emit what is held (an unfinished character becomes U+FFFD) and the last update. */
    fun finish(): String {
        if (pending.isNotEmpty()) appendComplete(pending, final = true)
        if (stopReason == StopReason.RUNNING) stopReason = StopReason.FINISHED
        maybeFlush(force = true)
        return answer
    }

    private fun end(reason: StopReason): Boolean {
        stopReason = reason
        maybeFlush(force = true)
        return false
    }

    /** [all]: the held bytes followed by the new ones. */
    private fun appendComplete(all: ByteArray, final: Boolean) {
        val cut = if (final) all.size else completePrefix(all)
        text.append(decode(all, cut))
        pending = all.copyOfRange(cut, all.size)
    }

    private fun maybeFlush(force: Boolean) {
        val now = clockMillis()
        if (text.length == flushedLength) return
        if (force || lastFlush == Long.MIN_VALUE || now - lastFlush >= batchMillis) {
            lastFlush = now
            flushedLength = text.length
            onUpdate(text.toString())
        }
    }

    companion object {
        /** Length of the longest prefix of [b] that does not end inside a UTF-8 sequence. */
        fun completePrefix(b: ByteArray): Int {
            val n = b.size
            // A sequence is at most 4 bytes: only the last 3 can start an unfinished one.
            for (back in 1..minOf(3, n)) {
                val x = b[n - back].toInt() and 0xFF
                if (x and 0xC0 == 0x80) continue // continuation byte: look further back
                val need =
                    when {
                        x and 0x80 == 0 -> 1
                        x and 0xE0 == 0xC0 -> 2
                        x and 0xF0 == 0xE0 -> 3
                        x and 0xF8 == 0xF0 -> 4
                        else -> 1 // not a lead byte: invalid, decoded as U+FFFD now
                    }
                return if (need > back) n - back else n
            }
            return n
        }

        private fun decode(b: ByteArray, length: Int): String {
            val decoder =
                StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPLACE)
                    .onUnmappableCharacter(CodingErrorAction.REPLACE)
            val out: CharBuffer = decoder.decode(ByteBuffer.wrap(b, 0, length))
            return out.toString()
        }
    }
}
