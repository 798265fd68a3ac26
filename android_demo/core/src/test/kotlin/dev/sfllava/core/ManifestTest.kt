package dev.sfllava.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import java.io.File
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import org.junit.Test

class ManifestTest {
    private fun raw(dir: File): JsonObject = JsonParser.parseString(File(dir, "manifest.json").readText()).asJsonObject

    private fun failsWith(json: JsonObject, expected: String) {
        val e = assertFailsWith<BundleException> { Manifest.parse(json.toString()) }
        assertContains(e.message!!, expected)
    }

    @Test
    fun readsExportedManifests() {
        for (dir in Bundles.dirs) {
            val m = Bundles.manifest(dir)
            assertEquals(SCHEMA_VERSION, m.schemaVersion)
            assertEquals("executorch", m.backend)
            assertEquals(METHOD_NAMES.toSet(), m.methods.keys)
            val vision = m.methods.getValue("vision_encoder").inputs[0]
            assertEquals("uint8", vision.dtype)
            assertEquals(listOf("1", "3", "${m.video.frames * m.video.frameHeight}", "${m.video.frameWidth}"), vision.shape)
            assertEquals(m.packedImageSize(), m.video.frameWidth to m.video.frames * m.video.frameHeight)
            assertTrue(m.video.normalizationInGraph)
            assertEquals("model.pte", m.programFile())
            assertNotNull(m.executorch).kernelLibraries.forEach { assertTrue(it.android.isNotEmpty()) }
            assertEquals(m.prompt.eosIds.size, m.prompt.eosPieces.size)
            assertTrue(m.visualTokens > 0 && m.context.maxContextLen > m.visualTokens)
        }
    }

    @Test
    fun refusesOtherSchemaVersionsAndShapes() {
        val dir = Bundles.dirs.first()
        failsWith(raw(dir).apply { addProperty("schema_version", 2) }, "schema_version 2; this app reads $SCHEMA_VERSION")
        failsWith(raw(dir).apply { remove("video") }, "manifest.video: missing")
        failsWith(raw(dir).apply { getAsJsonObject("video").addProperty("frames", "eight") }, "manifest.video.frames: expected an integer")
        failsWith(raw(dir).apply { getAsJsonObject("video").addProperty("sampling_rule", "random") }, "unknown frame sampling rule")
        failsWith(raw(dir).apply { getAsJsonObject("prompt").remove("eos_pieces") }, "manifest.prompt.eos_pieces: missing")
        failsWith(raw(dir).apply { getAsJsonObject("methods").remove("text_decoder") }, "missing text_decoder")
        failsWith(raw(dir).apply { addProperty("backend", "tflite") }, "'tflite' is not one of")
        assertFailsWith<BundleException> { Manifest.parse("{not json") }
        assertFailsWith<BundleException> { Manifest.parse("[]") }
    }

    @Test
    fun aCoreMlManifestHasNoProgramForTheAndroidApp() {
        val json = raw(Bundles.dirs.first())
        json.addProperty("backend", "coreml")
        val m = Manifest.parse(json.toString())
        val e = assertFailsWith<BundleException> { m.programFile() }
        assertContains(e.message!!, "runs ExecuTorch bundles")
    }
}
