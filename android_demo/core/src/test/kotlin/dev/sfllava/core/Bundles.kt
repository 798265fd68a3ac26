package dev.sfllava.core

import java.io.File

/**
 * Bundles exported by the Python suite, passed as `-Dsfllava.bundles=DIR[:DIR...]`
 * (`tests/android/test_core.py`); on a Mac or in Android Studio, point it at any exported bundle.
 */
object Bundles {
    val dirs: List<File> by lazy {
        val prop =
            System.getProperty("sfllava.bundles")
                ?: error("set -Dsfllava.bundles to one or more exported bundle folders")
        prop.split(File.pathSeparator).filter { it.isNotBlank() }.map { File(it) }.also { list ->
            check(list.isNotEmpty()) { "-Dsfllava.bundles names no folder" }
            list.forEach { check(File(it, "manifest.json").isFile) { "$it has no manifest.json" } }
        }
    }

    fun manifest(dir: File): Manifest = Manifest.parse(File(dir, "manifest.json").readText())

    fun golden(dir: File): Golden = Golden.parse(File(dir, "golden.json").readText())
}
