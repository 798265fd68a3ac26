package dev.sfllava.core

/**
 * Display orientation of decoded frames. Android's `MediaMetadataRetriever` already applies the
 * video's rotation to the frames it returns; a platform that did not would hand back frames with
 * the coded (unrotated) size, so a quarter turn still owed shows in the dimensions.
 */
object FrameOrientation {
    /**
     * Clockwise degrees still to apply to a frame of [frameWidth]x[frameHeight] from a video coded at
     * [codedWidth]x[codedHeight] with display rotation [rotationDegrees]. A half turn does not show in
     * the size, so it is left to the platform (which applies it with the quarter turns).
     */
    fun extraRotation(frameWidth: Int, frameHeight: Int, codedWidth: Int, codedHeight: Int, rotationDegrees: Int): Int {
        val r = ((rotationDegrees % 360) + 360) % 360
        if (r != 90 && r != 270) return 0
        if (codedWidth == codedHeight) return 0 // a square frame cannot tell: trust the platform
        return if (frameWidth == codedWidth && frameHeight == codedHeight) r else 0
    }
}
