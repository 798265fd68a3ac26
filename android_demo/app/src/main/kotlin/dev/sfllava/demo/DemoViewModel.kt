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
import dev.sfllava.core.ContextFullException
import dev.sfllava.core.StopReason
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.pytorch.executorch.ExecutorchRuntimeException

/**
 * Numbers shown under an answer. [timeToFirstTokenS] runs from the question: for a first question it
 * includes reading and prefilling the clip unless that was done while the user typed; [followUp]:
 * the clip was already in the runner.
 */
data class AnswerStats(
    val timeToFirstTokenS: Double,
    val decodeTokensPerSecond: Double?,
    val tokens: Int,
    val stop: StopReason,
    val followUp: Boolean,
    val contextLeft: Int
)

/** One question and its answer in the conversation about the current clip. */
data class Exchange(val question: String, val answer: String, val stats: AnswerStats?)

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

    /** Earlier questions about this clip, oldest first (the current one is [answer]). */
    var history by mutableStateOf(emptyList<Exchange>())
        private set
    var error by mutableStateOf<String?>(null)
        private set

    /** The last question did not fit the context: the screen offers to start over. */
    var contextFull by mutableStateOf(false)
        private set

    /** The clip is in the runner: the next question is a follow-up unless the conversation starts over. */
    var clipReady by mutableStateOf(false)
        private set
    private var currentQuestion: String? = null
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
            main.post { resetConversation() }
        }
    }

    private fun resetConversation() {
        clipReady = false
        contextFull = false
        history = emptyList()
        answer = ""
        stats = null
        currentQuestion = null
    }

    /** A new clip: its frames are read and prefilled into the runner at once, while the user types. */
    fun pickVideo(uri: Uri) {
        video = uri
        thumbnails = emptyList()
        error = null
        resetConversation()
        if (engine != null) run("Reading the clip") { prepareClip(uri) }
    }

    /** Start over: forget the questions, keep the clip (the runner has no rewind: the clip goes in again). */
    fun startOver() {
        val uri = video ?: return
        error = null
        resetConversation()
        run("Starting over") { prepareClip(uri) }
    }

    /** Decodes the clip and puts it in a reset runner; returns (decoded, ready) times. */
    private fun prepareClip(uri: Uri): Pair<Long, Long> {
        val e = engine ?: throw BundleException("the bundle is not loaded")
        val spec = bundle?.manifest?.video ?: throw BundleException("the bundle is not loaded")
        val clip = VideoFrames.read(getApplication(), uri, spec)
        main.post { thumbnails = clip.thumbnails }
        val decoded = LlmEngine.nowMs()
        e.loadClip(clip.frames)
        main.post { clipReady = true }
        return decoded to LlmEngine.nowMs()
    }

    fun ask(question: String) {
        val uri = video
        when {
            engine == null -> error = "Pick a bundle first"

            uri == null -> error = "Pick a video first"

            else -> {
                currentQuestion?.let { q -> history = history + Exchange(q, answer, stats) }
                currentQuestion = question.trim()
                answer = ""
                stats = null
                error = null
                contextFull = false
                run("Answering") { answerOn(uri, question) }
            }
        }
    }

    private fun answerOn(uri: Uri, question: String) {
        val e = engine ?: throw BundleException("the bundle is not loaded")
        val start = LlmEngine.nowMs()
        val followUp = e.conversation.clipLoaded
        // The first question pays for the clip if it is not in the runner yet; a follow-up does not.
        val (decoded, ready) = if (followUp) start to start else prepareClip(uri)
        val result =
            try {
                e.ask(question, start, decoded, ready) { text -> main.post { answer = text } }
            } catch (full: ContextFullException) {
                main.post { contextFull = true }
                throw full
            }
        val s = result.timing.stats
        val left = e.conversation.remaining // read on the worker: the engine is not touched from the main thread
        main.post {
            answer = result.text
            stats =
                AnswerStats(
                    timeToFirstTokenS = result.timing.timeToFirstTokenSeconds,
                    decodeTokensPerSecond = s?.decodeTokensPerSecond,
                    tokens = result.tokens,
                    stop = result.stopReason,
                    followUp = followUp,
                    contextLeft = left
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
