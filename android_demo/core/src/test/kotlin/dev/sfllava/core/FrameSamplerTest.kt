package dev.sfllava.core

import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import org.junit.Test

class FrameSamplerTest {
    @Test
    fun goldenIndicesForBothRules() {
        for (dir in Bundles.dirs) {
            val g = Bundles.golden(dir)
            for (cases in listOf(g.frameIndices, g.frameIndicesSegmentMidpoint)) {
                assertEquals(6, cases.cases.size)
                for ((total, want) in cases.cases) {
                    assertContentEquals(want, FrameSampler.sample(total, cases.frames, cases.rule), "$dir ${cases.rule} total=$total")
                }
            }
        }
    }

    @Test
    fun segmentMidpointRoundsHalfToEven() {
        // total 6, 4 frames: seg = 1.25; round(2.5) = 2 and round(3.75) = 4 in Python, so frame 2 is (2 + 4) / 2 = 3.
        assertContentEquals(intArrayOf(0, 1, 3, 4), FrameSampler.sample(6, 4, SamplingRule.SEGMENT_MIDPOINT))
        // total 3, 2 frames: seg = 1.0; (0 + 1) / 2 = 0, (1 + 2) / 2 = 1.
        assertContentEquals(intArrayOf(0, 1), FrameSampler.sample(3, 2, SamplingRule.SEGMENT_MIDPOINT))
    }

    @Test
    fun uniformRepeatsFramesOfShortClipsAndRejectsEmptyOnes() {
        assertContentEquals(intArrayOf(0, 0, 1, 1), FrameSampler.sample(2, 4, SamplingRule.UNIFORM))
        assertFailsWith<IllegalArgumentException> { FrameSampler.sample(0, 4, SamplingRule.UNIFORM) }
        assertFailsWith<IllegalArgumentException> { FrameSampler.sample(10, 0, SamplingRule.UNIFORM) }
        assertFailsWith<BundleException> { SamplingRule.fromWire("random") }
    }

    @Test
    fun uniformDoesNotOverflowOnLongClips() {
        val idx = FrameSampler.sample(2_000_000_000, 128, SamplingRule.UNIFORM)
        assertEquals(((2L * 127 + 1) * 2_000_000_000L / 256).toInt(), idx.last())
    }
}
