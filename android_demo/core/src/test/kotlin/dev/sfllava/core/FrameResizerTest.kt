package dev.sfllava.core

import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import org.junit.Test

class FrameResizerTest {
    private fun pattern(h: Int, w: Int) = GoldenClip.patternFrames(1, h, w)[0]

    private fun ByteArray.unsigned() = IntArray(size) { this[it].toInt() and 0xFF }

    @Test
    fun smallResizeIsBitExact() {
        for (dir in Bundles.dirs) {
            val g = Bundles.golden(dir)
            val v = g.resizeSmall
            val got = FrameResizer.resize(pattern(g.patternHeight, g.patternWidth), g.patternWidth, g.patternHeight, v.width, v.height)
            assertContentEquals(v.uint8Hwc, got.unsigned(), "$dir")
        }
    }

    @Test
    fun modelSizeResizeMatchesSumAndFirstRow() {
        for (dir in Bundles.dirs) {
            val g = Bundles.golden(dir)
            val v = g.resizeModel
            val got = FrameResizer.resize(
                pattern(g.patternHeight, g.patternWidth),
                g.patternWidth,
                g.patternHeight,
                v.width,
                v.height
            ).unsigned()
            assertEquals(v.sum, got.sumOf { it.toLong() }, "$dir")
            assertContentEquals(v.firstRow, got.copyOf(v.firstRow!!.size), "$dir")
        }
    }

    @Test
    fun sameSizeIsACopyAndBadInputFails() {
        val src = pattern(5, 7)
        val same = FrameResizer.resize(src, 7, 5, 7, 5)
        assertContentEquals(src, same)
        assertFailsWith<IllegalArgumentException> { FrameResizer.resize(src, 7, 4, 3, 3) }
        assertFailsWith<IllegalArgumentException> { FrameResizer.resize(src, 7, 5, 0, 3) }
    }

    @Test
    fun upscalingAConstantImageKeepsIt() {
        val grey = ByteArray(4 * 4 * 3) { 200.toByte() }
        assertEquals(setOf(200), FrameResizer.resize(grey, 4, 4, 9, 13).unsigned().toSet())
    }
}
