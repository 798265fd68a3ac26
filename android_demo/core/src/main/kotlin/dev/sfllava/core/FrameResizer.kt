package dev.sfllava.core

/**
 * The project's bilinear squash-resize (`sfllava_mobile.video.resize_frames`), bit for bit: half-pixel
 * centres, edge clamp, no antialiasing, every step a float32 operation in the order Python takes it,
 * then round half to even and clamp to 0..255.
 */
object FrameResizer {
    private class Axis(val i0: IntArray, val i1: IntArray, val w0: FloatArray, val w1: FloatArray)

    private fun axis(nIn: Int, nOut: Int): Axis {
        val scale = nIn.toFloat() / nOut.toFloat()
        val i0 = IntArray(nOut)
        val i1 = IntArray(nOut)
        val w0 = FloatArray(nOut)
        val w1 = FloatArray(nOut)
        for (d in 0 until nOut) {
            val src = maxOf(scale * (d.toFloat() + 0.5f) - 0.5f, 0f)
            val lo = Math.floor(src.toDouble()).toInt()
            i0[d] = lo
            i1[d] = minOf(lo + 1, nIn - 1)
            w1[d] = src - lo.toFloat()
            w0[d] = 1f - w1[d]
        }
        return Axis(i0, i1, w0, w1)
    }

    /** [rgb]: `height x width x 3` interleaved (HWC) bytes; returns `outHeight x outWidth x 3`, HWC. */
    fun resize(rgb: ByteArray, width: Int, height: Int, outWidth: Int, outHeight: Int): ByteArray {
        require(width >= 1 && height >= 1 && outWidth >= 1 && outHeight >= 1) {
            "sizes must be positive: ${width}x$height -> ${outWidth}x$outHeight"
        }
        require(rgb.size == width * height * 3) {
            "expected ${width * height * 3} RGB bytes for ${width}x$height, got ${rgb.size}"
        }
        if (width == outWidth && height == outHeight) return rgb.copyOf()
        val ys = axis(height, outHeight)
        val xs = axis(width, outWidth)
        val out = ByteArray(outWidth * outHeight * 3)
        var o = 0
        for (oy in 0 until outHeight) {
            val r0 = ys.i0[oy] * width * 3
            val r1 = ys.i1[oy] * width * 3
            val wy0 = ys.w0[oy]
            val wy1 = ys.w1[oy]
            for (ox in 0 until outWidth) {
                val c0 = xs.i0[ox] * 3
                val c1 = xs.i1[ox] * 3
                val wx0 = xs.w0[ox]
                val wx1 = xs.w1[ox]
                for (c in 0 until 3) {
                    val top = px(rgb, r0 + c0 + c) * wx0 + px(rgb, r0 + c1 + c) * wx1
                    val bottom = px(rgb, r1 + c0 + c) * wx0 + px(rgb, r1 + c1 + c) * wx1
                    val v = top * wy0 + bottom * wy1
                    out[o++] = Math.rint(v.toDouble()).coerceIn(0.0, 255.0).toInt().toByte()
                }
            }
        }
        return out
    }

    private fun px(a: ByteArray, i: Int): Float = (a[i].toInt() and 0xFF).toFloat()
}
