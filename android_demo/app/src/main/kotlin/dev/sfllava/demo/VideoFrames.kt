package dev.sfllava.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Matrix
import android.media.MediaMetadataRetriever
import android.net.Uri
import dev.sfllava.core.BundleException
import dev.sfllava.core.FrameOrientation
import dev.sfllava.core.FrameResizer
import dev.sfllava.core.FrameSampler
import dev.sfllava.core.VideoSpec

/** The sampled frames of one video: resized for the model (HWC RGB) and small thumbnails for the strip. */
class SampledClip(val indices: IntArray, val totalFrames: Int, val frames: List<ByteArray>, val thumbnails: List<Bitmap>)

/** Frames by index with MediaMetadataRetriever (API 28+), the bundle's sampling rule and core's resize. */
object VideoFrames {
    private const val THUMB_HEIGHT = 96

    fun read(context: Context, uri: Uri, spec: VideoSpec): SampledClip {
        val retriever = MediaMetadataRetriever()
        try {
            try {
                retriever.setDataSource(context, uri)
            } catch (e: RuntimeException) {
                throw BundleException("this video cannot be opened on this phone (${e.message ?: e.javaClass.simpleName})")
            }
            val total =
                retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_VIDEO_FRAME_COUNT)?.toIntOrNull()
                    ?: throw BundleException("this file has no video track the phone can count frames in")
            if (total < 1) throw BundleException("this video has no frames")
            val codedWidth = retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_VIDEO_WIDTH)?.toIntOrNull() ?: 0
            val codedHeight = retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_VIDEO_HEIGHT)?.toIntOrNull() ?: 0
            val rotation = retriever.extractMetadata(MediaMetadataRetriever.METADATA_KEY_VIDEO_ROTATION)?.toIntOrNull() ?: 0
            val indices = FrameSampler.sample(total, spec.frames, spec.samplingRule)
            val decoded = HashMap<Int, Pair<ByteArray, Bitmap>>()
            for (i in indices.distinct()) {
                val raw =
                    try {
                        retriever.getFrameAtIndex(i)
                    } catch (e: RuntimeException) {
                        null
                    } ?: throw BundleException("frame $i of $total could not be decoded")
                val extra = FrameOrientation.extraRotation(raw.width, raw.height, codedWidth, codedHeight, rotation)
                val upright = if (extra == 0) raw else rotate(raw, extra)
                val rgb = rgbBytes(upright)
                val resized = FrameResizer.resize(rgb, upright.width, upright.height, spec.frameWidth, spec.frameHeight)
                val thumb = Bitmap.createScaledBitmap(upright, maxOf(1, upright.width * THUMB_HEIGHT / upright.height), THUMB_HEIGHT, true)
                decoded[i] = resized to thumb
                if (upright !== raw) upright.recycle()
                raw.recycle()
            }
            return SampledClip(
                indices = indices,
                totalFrames = total,
                frames = indices.map { decoded.getValue(it).first },
                thumbnails = indices.map { decoded.getValue(it).second }
            )
        } finally {
            retriever.release()
        }
    }

    private fun rotate(b: Bitmap, degrees: Int): Bitmap =
        Bitmap.createBitmap(b, 0, 0, b.width, b.height, Matrix().apply { postRotate(degrees.toFloat()) }, true)

    /** ARGB_8888 pixels to interleaved RGB bytes (alpha dropped), the layout core's resize takes. */
    private fun rgbBytes(b: Bitmap): ByteArray {
        val argb = if (b.config == Bitmap.Config.ARGB_8888) b else b.copy(Bitmap.Config.ARGB_8888, false)
        val pixels = IntArray(argb.width * argb.height)
        argb.getPixels(pixels, 0, argb.width, 0, 0, argb.width, argb.height)
        val out = ByteArray(pixels.size * 3)
        for ((i, p) in pixels.withIndex()) {
            out[3 * i] = (p shr 16).toByte()
            out[3 * i + 1] = (p shr 8).toByte()
            out[3 * i + 2] = p.toByte()
        }
        if (argb !== b) argb.recycle()
        return out
    }
}
