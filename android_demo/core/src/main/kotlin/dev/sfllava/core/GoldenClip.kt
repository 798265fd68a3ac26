package dev.sfllava.core

/**
 * The deterministic clips the bundle's golden vectors are computed on, rebuilt from their formulas
 * (`sfllava_mobile.synthetic.synthetic_frames`, `sfllava_mobile.bundle.packed_frames`), so a phone can
 * check and time itself without a video file.
 */
object GoldenClip {
    /** `synthetic_frames(numFrames, height, width)`: a gradient with a white square crossing it; HWC frames. */
    fun syntheticFrames(numFrames: Int, height: Int, width: Int): List<ByteArray> {
        val side = maxOf(2, minOf(height, width) / 4)
        val step = maxOf(1, (width - side) / maxOf(numFrames - 1, 1))
        val wrap = maxOf(width - side, 1)
        val y0 = (height - side) / 2
        return List(numFrames) { t ->
            val x0 = (t * step) % wrap
            val img = ByteArray(height * width * 3)
            for (y in 0 until height) {
                for (x in 0 until width) {
                    val i = (y * width + x) * 3
                    val inSquare = y in y0 until y0 + side && x in x0 until x0 + side
                    img[i] = (if (inSquare) 255 else x * 255 / maxOf(width - 1, 1)).toByte()
                    img[i + 1] = (if (inSquare) 255 else y * 255 / maxOf(height - 1, 1)).toByte()
                    img[i + 2] = (if (inSquare) 255 else 64).toByte()
                }
            }
            img
        }
    }

    /** The golden answer's clip: 96x128 synthetic frames resized to the model's frame size. */
    fun goldenAnswerFrames(numFrames: Int, outHeight: Int, outWidth: Int): List<ByteArray> =
        syntheticFrames(numFrames, 96, 128).map { FrameResizer.resize(it, 128, 96, outWidth, outHeight) }

    /** Frame t of the packing vector: value (37*x + 91*y + 53*c + 17*t) % 256. */
    fun patternFrames(numFrames: Int, height: Int, width: Int): List<ByteArray> = List(numFrames) { t ->
        ByteArray(height * width * 3) { i ->
            val c = i % 3
            val x = (i / 3) % width
            val y = i / 3 / width
            ((37 * x + 91 * y + 53 * c + 17 * t) % 256).toByte()
        }
    }
}
