package dev.sfllava.core

import com.google.gson.JsonParser
import java.io.File
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder

class BundleFolderTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private fun copyBundle(): File {
        val src = Bundles.dirs.first()
        val dst = tmp.newFolder("bundle")
        for (name in listOf("manifest.json", "golden.json", "tokenizer.json")) File(src, name).copyTo(File(dst, name))
        File(dst, "model.pte").writeBytes(byteArrayOf(1, 2, 3)) // the folder check reads names and sizes, not the program
        return dst
    }

    private fun fails(dir: File, expected: String) =
        assertContains(assertFailsWith<BundleException> { BundleFolder.load(dir) }.message!!, expected)

    @Test
    fun loadsExportedBundles() {
        for (dir in Bundles.dirs) {
            val b = BundleFolder.load(dir)
            assertEquals("model.pte", b.program.name)
            assertEquals(b.manifest.video.frames, b.golden.greedy.clipFrames)
        }
    }

    @Test
    fun namesWhatIsWrong() {
        fails(File(tmp.root, "nothing"), "no bundle folder")
        fails(tmp.newFolder("empty"), "is not a bundle: no manifest.json")
        val b = copyBundle()
        File(b, "model.pte").delete()
        fails(b, "model.pte is missing or empty")
    }

    @Test
    fun aDataFileIsRequiredWhenTheManifestNamesOne() {
        val b = copyBundle()
        assertEquals(null, BundleFolder.load(b).data) // a single-file program: no data path for LlmModule
        val m = JsonParser.parseString(File(b, "manifest.json").readText()).asJsonObject
        m.getAsJsonObject("executorch").addProperty("data", "model.ptd")
        File(b, "manifest.json").writeText(m.toString())
        fails(b, "model.ptd is missing or empty")
        File(b, "model.ptd").writeBytes(byteArrayOf(4, 5))
        assertEquals("model.ptd", BundleFolder.load(b).data!!.name)
    }

    @Test
    fun refusesAFrameCountTheProgramDoesNotTake() {
        val b = copyBundle()
        val m = JsonParser.parseString(File(b, "manifest.json").readText()).asJsonObject
        val frames = m.getAsJsonObject("video").get("frames").asInt
        m.getAsJsonObject("video").addProperty("frames", frames * 2)
        File(b, "manifest.json").writeText(m.toString())
        fails(b, "frame count differs")
    }

    @Test
    fun orientationAndPeakRss() {
        assertEquals(90, FrameOrientation.extraRotation(640, 480, 640, 480, 90))
        assertEquals(0, FrameOrientation.extraRotation(480, 640, 640, 480, 90))
        assertEquals(0, FrameOrientation.extraRotation(640, 480, 640, 480, 180))
        assertEquals(270, FrameOrientation.extraRotation(640, 480, 640, 480, -90))
        val status = tmp.newFile("status").apply { writeText("Name:\tjava\nVmHWM:\t  204800 kB\nVmRSS:\t1 kB\n") }
        assertEquals(200.0, ProcStatus.peakRssMb(status))
        assertEquals(null, ProcStatus.peakRssMb(File(tmp.root, "none")))
    }
}
