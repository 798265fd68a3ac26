package dev.sfllava.core

import java.io.File

/** An ExecuTorch bundle folder, checked: what the Android app needs is present and consistent. */
data class BundleFolder(val dir: File, val manifest: Manifest, val golden: Golden) {
    val name: String get() = dir.name
    val program: File get() = File(dir, manifest.programFile())
    val tokenizer: File get() = File(dir, manifest.artifacts["tokenizer"] ?: "tokenizer.json")

    /** The program's data file (part of its weights), or null when the program holds them all. */
    val data: File? get() = manifest.dataFile()?.let { File(dir, it) }

    companion object {
        /** Reads and checks [dir]; every problem is a [BundleException] a user can act on. */
        fun load(dir: File): BundleFolder {
            if (!dir.isDirectory) throw BundleException("no bundle folder at $dir")
            val manifestFile = File(dir, "manifest.json")
            if (!manifestFile.isFile) throw BundleException("${dir.name} is not a bundle: no manifest.json")
            val manifest = Manifest.parse(manifestFile.readText())
            val goldenFile = File(dir, manifest.artifacts["golden"] ?: "golden.json")
            if (!goldenFile.isFile) throw BundleException("${dir.name}: no ${goldenFile.name} (re-push the whole bundle folder)")
            val bundle = BundleFolder(dir, manifest, Golden.parse(goldenFile.readText()))
            for (f in listOfNotNull(bundle.program, bundle.tokenizer, bundle.data)) {
                if (!f.isFile ||
                    f.length() == 0L
                ) {
                    throw BundleException("${dir.name}: ${f.name} is missing or empty (re-push the whole bundle folder)")
                }
            }
            checkFrames(bundle)
            return bundle
        }

        private fun checkFrames(b: BundleFolder) {
            val v = b.manifest.video
            val shape = b.manifest.methods.getValue("vision_encoder").inputs.firstOrNull()?.shape
            val (w, h) = b.manifest.packedImageSize()
            if (shape == null || shape.size != 4 || shape[2] != h.toString() || shape[3] != w.toString()) {
                throw BundleException(
                    "${b.name}: the vision encoder takes ${shape ?: "nothing"}, not ${v.frames} frames of " +
                        "${v.frameHeight}x${v.frameWidth} (the manifest's frame count differs from the program's)"
                )
            }
            if (b.golden.greedy.clipFrames != v.frames) {
                throw BundleException(
                    "${b.name}: golden.json was made for ${b.golden.greedy.clipFrames} frames, the manifest says ${v.frames}"
                )
            }
        }
    }
}
