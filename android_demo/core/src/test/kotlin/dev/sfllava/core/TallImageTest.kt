package dev.sfllava.core

import java.security.MessageDigest
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import org.junit.Test

fun sha256(b: ByteArray): String = MessageDigest.getInstance("SHA-256").digest(b).joinToString("") { "%02x".format(it) }

class TallImageTest {
    @Test
    fun packedPatternClipMatchesGolden() {
        for (dir in Bundles.dirs) {
            val p = Bundles.golden(dir).packedClip
            val packed = TallImage.pack(GoldenClip.patternFrames(p.frames, p.height, p.width), p.width, p.height)
            assertEquals(p.bytes, packed.size)
            assertContentEquals(p.firstBytes, IntArray(64) { packed[it].toInt() and 0xFF })
            assertEquals(p.sha256, sha256(packed), "$dir")
        }
    }

    @Test
    fun goldenAnswerClipIsTheOneThePythonSuiteAnswered() {
        // Sampling-free part of the app's path: synthetic frames -> FrameResizer -> TallImage.
        for (dir in Bundles.dirs) {
            val m = Bundles.manifest(dir)
            val g = Bundles.golden(dir)
            val frames = GoldenClip.goldenAnswerFrames(g.greedy.clipFrames, m.video.frameHeight, m.video.frameWidth)
            assertEquals(g.greedy.imageSha256, sha256(TallImage.pack(frames, m.video.frameWidth, m.video.frameHeight)), "$dir")
        }
    }

    @Test
    fun layoutIsPlanarAndStackedAlongHeight() {
        val a = ByteArray(2 * 1 * 3) { (10 + it).toByte() } // 2x1 frame: (10,11,12), (13,14,15)
        val b = ByteArray(2 * 1 * 3) { (20 + it).toByte() }
        val packed = TallImage.pack(listOf(a, b), 2, 1)
        // channel 0: frame a row, frame b row; then channel 1; then channel 2.
        assertContentEquals(byteArrayOf(10, 13, 20, 23, 11, 14, 21, 24, 12, 15, 22, 25), packed)
        assertFailsWith<IllegalArgumentException> { TallImage.pack(listOf(a, ByteArray(5)), 2, 1) }
        assertFailsWith<IllegalArgumentException> { TallImage.pack(emptyList(), 2, 1) }
    }
}
