package dev.sfllava.demo

import android.app.ActivityManager
import android.os.Build
import android.os.Bundle
import android.util.Log
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.material3.Text
import androidx.compose.runtime.mutableStateOf
import dev.sfllava.core.BenchReport
import dev.sfllava.core.BundleException
import dev.sfllava.core.DeviceInfo
import dev.sfllava.core.GoldenClip
import java.io.File
import java.util.concurrent.Executors
import org.pytorch.executorch.ExecutorchRuntimeException

/**
 * Benchmark mode: `adb shell am start -n dev.sfllava.demo/.BenchmarkActivity --es bundle NAME
 * --ei runs 5 [--ei warmup 1] [--es question TEXT]` runs the bundle's golden clip (rebuilt by core,
 * no video file needed) and writes the host `bench` JSON to files/bench/NAME.json, or the reason it
 * could not to files/bench/NAME.error (benchmarks/android_device.sh waits for either).
 */
class BenchmarkActivity : ComponentActivity() {
    private val status = mutableStateOf("starting")

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent { Text(status.value) }
        val name = intent.getStringExtra("bundle")
        val runs = intent.getIntExtra("runs", 5).coerceIn(1, 100)
        val warmup = intent.getIntExtra("warmup", 1).coerceIn(0, 10)
        val question = intent.getStringExtra("question")
        val outDir = File(getExternalFilesDir(null) ?: filesDir, "bench").apply { mkdirs() }
        Executors.newSingleThreadExecutor().execute {
            val outName = name ?: "unnamed"
            File(outDir, "$outName.json").delete()
            File(outDir, "$outName.error").delete()
            try {
                if (name == null) throw BundleException("pass the bundle folder name: --es bundle NAME")
                val json = bench(name, runs, warmup, question)
                writeAtomically(File(outDir, "$name.json"), json)
                update("wrote ${File(outDir, "$name.json")}")
            } catch (e: BundleException) {
                fail(outDir, outName, e.message ?: "bad bundle")
            } catch (e: ExecutorchRuntimeException) {
                fail(outDir, outName, "ExecuTorch: ${e.message}")
            } catch (e: OutOfMemoryError) {
                fail(outDir, outName, "out of memory")
            }
        }
    }

    private fun bench(name: String, runs: Int, warmup: Int, question: String?): String {
        val bundle = BundleStore.load(this, name)
        val m = bundle.manifest
        val questions = listOf(question ?: bundle.golden.greedy.question, bundle.golden.conversation.questions[1])
        val results = mutableListOf<Map<String, Any>>()
        LlmEngine(bundle).use { engine ->
            update("loading $name")
            engine.load()
            for (i in 0 until warmup + runs) {
                update(if (i < warmup) "warm-up ${i + 1}/$warmup" else "run ${i - warmup + 1}/$runs")
                // As a user asks: the clip and the first question, then a follow-up (no re-encoding).
                val start = LlmEngine.nowMs()
                val frames = GoldenClip.goldenAnswerFrames(m.video.frames, m.video.frameHeight, m.video.frameWidth)
                val decoded = LlmEngine.nowMs()
                engine.loadClip(frames)
                val first = engine.ask(questions[0], start, decoded, decoded) { }
                first.error?.let { throw BundleException(it) }
                val askedAgain = LlmEngine.nowMs()
                val followUp = engine.ask(questions[1], askedAgain, askedAgain, askedAgain) { }
                followUp.error?.let { throw BundleException(it) }
                if (i >= warmup) results.add(first.timing.toEngineRun(followUp.timing))
            }
        }
        val memory = ActivityManager.MemoryInfo().also { (getSystemService(ACTIVITY_SERVICE) as ActivityManager).getMemoryInfo(it) }
        val device = DeviceInfo(
            Build.MODEL,
            "Android ${Build.VERSION.RELEASE}",
            Build.SUPPORTED_ABIS.firstOrNull(),
            memory.totalMem / (1 shl 20)
        )
        return BenchReport.build(
            m,
            bundle.dir.absolutePath,
            "golden clip (${m.video.frames} synthetic frames)",
            m.context.maxNewTokens,
            Runtime.getRuntime().availableProcessors(),
            device,
            results
        )
    }

    private fun writeAtomically(file: File, text: String) {
        val tmp = File(file.parentFile, "${file.name}.tmp")
        tmp.writeText(text)
        if (!tmp.renameTo(file)) throw BundleException("cannot write $file")
    }

    private fun fail(dir: File, name: String, message: String) {
        Log.e(TAG, message)
        writeAtomically(File(dir, "$name.error"), message + "\n")
        update("failed: $message")
    }

    private fun update(text: String) {
        Log.i(TAG, text)
        runOnUiThread { status.value = text }
    }

    companion object {
        private const val TAG = "SfllavaBench"
    }
}
