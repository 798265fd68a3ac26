package dev.sfllava.core

/** How frames are chosen from a clip; [wire] is the name the manifest uses. */
enum class SamplingRule(val wire: String) {
    UNIFORM("uniform"),
    SEGMENT_MIDPOINT("segment_midpoint")
    ;

    companion object {
        fun fromWire(name: String): SamplingRule = entries.firstOrNull { it.wire == name }
            ?: throw BundleException("unknown frame sampling rule '$name' (known: ${entries.joinToString { it.wire }})")
    }
}

/** Frame indices to decode, exactly as `sfllava_mobile.video.sample_frame_indices`. */
object FrameSampler {
    /**
     * - `uniform`: frame i = ((2i + 1) * total) / (2 * numFrames), integer arithmetic; short clips repeat frames.
     * - `segment_midpoint` (SF-LLaVA v1): n = min(total, numFrames), seg = (total - 1) / n in doubles,
     *   frame i = (round(seg*i) + round(seg*(i+1))) / 2, round half to even as Python's round().
     */
    fun sample(totalFrames: Int, numFrames: Int, rule: SamplingRule): IntArray {
        require(totalFrames >= 1) { "the video has no frames to sample" }
        require(numFrames >= 1) { "numFrames must be >= 1, got $numFrames" }
        return when (rule) {
            SamplingRule.UNIFORM ->
                IntArray(numFrames) { i -> ((2L * i + 1) * totalFrames / (2L * numFrames)).toInt() }

            SamplingRule.SEGMENT_MIDPOINT -> {
                val n = minOf(totalFrames, numFrames)
                val seg = (totalFrames - 1).toDouble() / n
                // Math.rint rounds half to even, like Python's round() on floats.
                IntArray(n) { i -> ((Math.rint(seg * i) + Math.rint(seg * (i + 1))).toLong() / 2).toInt() }
            }
        }
    }
}
