package dev.sfllava.demo

import android.content.Context
import dev.sfllava.core.BundleFolder
import java.io.File

/** Bundles live in the app's files folder on shared storage, where `adb push` can put them. */
object BundleStore {
    fun root(context: Context): File = File(context.getExternalFilesDir(null) ?: context.filesDir, "bundles")

    /** What the empty state shows: the command that puts a bundle where [list] finds it. */
    fun pushCommand(context: Context): String = "adb push BUNDLE_DIR ${root(context).absolutePath}/my-bundle"

    /** Folder names under [root] that hold a manifest.json, sorted. */
    fun list(context: Context): List<String> = root(context).listFiles()
        ?.filter { it.isDirectory && File(it, "manifest.json").isFile }
        ?.map { it.name }
        ?.sorted()
        .orEmpty()

    /** Loads and checks one bundle; a bad one is a BundleException with a one-line reason. */
    fun load(context: Context, name: String): BundleFolder = BundleFolder.load(File(root(context), name))
}
