package dev.sfllava.core

/**
 * The `vision_encoder` input: T resized frames as one uint8 image `[3, T*H, W]`, channel-planar,
 * frames stacked along height (byte (c, t, y, x) at ((c*T + t)*H + y)*W + x). The stock runner
 * takes it as an image of width W, height T*H and 3 channels.
 */
object TallImage {
    /** [frames]: each `height x width x 3` interleaved (HWC), already resized to the model's frame size. */
    fun pack(frames: List<ByteArray>, width: Int, height: Int): ByteArray {
        require(frames.isNotEmpty()) { "no frames to pack" }
        val plane = width * height
        val t = frames.size
        val out = ByteArray(3 * t * plane)
        frames.forEachIndexed { f, rgb ->
            require(rgb.size == plane * 3) { "frame $f has ${rgb.size} bytes, expected ${plane * 3} (${width}x$height RGB)" }
            for (c in 0 until 3) {
                val base = (c * t + f) * plane
                var src = c
                for (p in 0 until plane) {
                    out[base + p] = rgb[src]
                    src += 3
                }
            }
        }
        return out
    }

    /** The runner's image height for [frames] frames of [height] rows. */
    fun packedHeight(frames: Int, height: Int): Int = frames * height
}
