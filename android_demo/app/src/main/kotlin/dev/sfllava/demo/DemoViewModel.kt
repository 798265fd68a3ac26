package dev.sfllava.demo

import android.app.Application
import android.graphics.Bitmap
import android.net.Uri
import android.os.Handler
import android.os.Looper
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.lifecycle.AndroidViewModel
import dev.sfllava.core.BundleException
import dev.sfllava.core.BundleFolder
import dev.sfllava.core.PromptPlan
import dev.sfllava.core.StopReason
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.pytorch.executorch.ExecutorchRuntimeException

/** Numbers shown under the answer. */
data class AnswerStats(
    val timeToFirstTokenS: Double,
    val prefillTokensPerSecond: Double?,
    val decodeTokensPerSecond: Double?,
    val tokens: Int,
    val stop: StopReason
)

/**
 * Screen state and the one background executor every runner call goes through (LlmModule is not
 * thread-safe, and nothing slow may run on the main thread). UI state is written on the main thread.
 */
class DemoViewModel(app: Application) : AndroidViewModel(app) {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private val main = Handler(Looper.getMainLooper())

    var bundles by mutableStateOf(emptyList<String>())
        private set
    var selected by mutableStateOf<String?>(null)
        private set
    var video by mutableStateOf<Uri?>(null)
        private set
    var thumbnails by mutableStateOf(emptyList<Bitmap>())
        private set
    var answer by mutableStateOf("")
        private set
    var stats by mutableStateOf<AnswerStats?>(null)
        private set
    var error by mutableStateOf<String?>(null)
        private set
    var busy by mutableStateOf<String?>(null)
        private set

    private var bundle: BundleFolder? = null
    private var engine: LlmEngine? = null

    val pushCommand: String get() = BundleStore.pushCommand(getApplication())

    init {
        refreshBundles()
    }

    fun refreshBundles() {
        bundles = BundleStore.list(getApplication())
        if (selected == null && bundles.isNotEmpty()) select(bundles.first())
    }

    fun select(name: String) {
        selected = name
        error = null
        run("Loading $name") {
            engine?.close()
            engine = null
            val b = BundleStore.load(getApplication(), name)
            val e = LlmEngine(b)
            e.load()
            bundle = b
            engine = e
        }
    }

    fun pickVideo(uri: Uri) {
        video = uri
        thumbnails = emptyList()
        error = null
        val spec = bundle?.manifest?.video
        if (spec != null) {
            run("Reading frames") {
                val clip = VideoFrames.read(getApplication(), uri, spec)
                main.post { thumbnails = clip.thumbnails }
            }
        }
    }

    fun ask(question: String) {
        val b = bundle
        val uri = video
        when {
            b == null -> error = "Pick a bundle first"

            uri == null -> error = "Pick a video first"

            else -> {
                answer = ""
                stats = null
                error = null
                run("Answering") { answerOn(b, uri, question) }
            }
        }
    }

    private fun answerOn(b: BundleFolder, uri: Uri, question: String) {
        val e = engine ?: throw BundleException("the bundle is not loaded")
        val plan = PromptPlan.build(b.manifest, question)
        val start = LlmEngine.nowMs()
        val clip = VideoFrames.read(getApplication(), uri, b.manifest.video)
        main.post { thumbnails = clip.thumbnails }
        val decoded = LlmEngine.nowMs()
        val result = e.answer(plan, clip.frames, start, decoded) { text -> main.post { answer = text } }
        val s = result.timing.stats
        main.post {
            answer = result.text
            stats =
                AnswerStats(
                    timeToFirstTokenS = result.timing.timeToFirstTokenSeconds,
                    prefillTokensPerSecond = s?.let { it.promptTokens / result.timing.prefillSeconds },
                    decodeTokensPerSecond = s?.decodeTokensPerSecond,
                    tokens = result.tokens,
                    stop = result.stopReason
                )
            error = result.error
        }
    }

    /** The Stop button: safe from any thread, ends the current generate(). */
    fun stop() {
        engine?.let { runCatching { it.stopGeneration() } }
    }

    private fun run(label: String, block: () -> Unit) {
        busy = label
        worker.execute {
            val message =
                try {
                    block()
                    null
                } catch (e: BundleException) {
                    e.message
                } catch (e: ExecutorchRuntimeException) {
                    "ExecuTorch: ${e.message}"
                } catch (e: IllegalArgumentException) {
                    e.message
                } catch (e: OutOfMemoryError) {
                    "out of memory: try a bundle exported with fewer frames"
                }
            main.post {
                busy = null
                if (message != null) error = message
            }
        }
    }

    override fun onCleared() {
        worker.execute { engine?.close() }
        worker.shutdown()
    }
}
