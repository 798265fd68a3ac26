package dev.sfllava.core

data class FrameIndexCases(val frames: Int, val rule: SamplingRule, val cases: Map<Int, IntArray>)

data class ResizeVector(val height: Int, val width: Int, val uint8Hwc: IntArray?, val sum: Long?, val firstRow: IntArray?)

data class PackedClipVector(val frames: Int, val height: Int, val width: Int, val bytes: Int, val sha256: String, val firstBytes: IntArray)

/** One input to the stock runner, in order: BOS tokens, text, or the packed clip. */
sealed class RunnerInput {
    data class Tokens(val ids: List<Int>) : RunnerInput()

    data class Text(val text: String) : RunnerInput()

    object Image : RunnerInput() {
        override fun toString() = "Image"
    }
}

data class GoldenPrompt(val question: String, val textBeforeVideo: String, val textAfterVideo: String, val runnerInputs: List<RunnerInput>)

data class GoldenGreedy(val question: String, val clipFrames: Int, val maxNewTokens: Int, val tokens: List<Int>, val imageSha256: String)

/** Two questions about the golden clip on one runner (`golden.json` `conversation`). */
data class GoldenConversation(
    val questions: List<String>,
    val textNextTurn: String,
    val idsNextTurn: List<Int>,
    val maxNewTokens: Int,
    val turn1Tokens: List<Int>,
    val turn1Fed: Int,
    val turn2Tokens: List<Int>,
    /** Runner positions in use after the clip ("clip") and after each turn ("turn1", "turn2"). */
    val positions: Map<String, Int>
)

/** `golden.json`: what the app's ports must reproduce (see `sfllava_mobile.bundle.golden`). */
data class Golden(
    val frameIndices: FrameIndexCases,
    val frameIndicesSegmentMidpoint: FrameIndexCases,
    val patternHeight: Int,
    val patternWidth: Int,
    val resizeSmall: ResizeVector,
    val resizeModel: ResizeVector,
    val packedClip: PackedClipVector,
    val prompt: GoldenPrompt,
    val greedy: GoldenGreedy,
    val conversation: GoldenConversation
) {
    companion object {
        fun parse(json: String): Golden {
            val g = JsonFields.parse(json, "golden")
            val version = g.int("schema_version")
            if (version != SCHEMA_VERSION) {
                throw BundleException("golden has schema_version $version; this app reads $SCHEMA_VERSION: re-export the bundle")
            }
            val small = g.obj("resize_small")
            val model = g.obj("resize_model")
            val packed = g.obj("packed_clip")
            val p = g.obj("prompt")
            val greedy = g.obj("greedy")
            val pattern = g.obj("pattern_frame")
            val conv = g.obj("conversation")
            val positions = conv.obj("positions")
            return Golden(
                frameIndices = indexCases(g.obj("frame_indices")),
                frameIndicesSegmentMidpoint = indexCases(g.obj("frame_indices_segment_midpoint")),
                patternHeight = pattern.int("height"),
                patternWidth = pattern.int("width"),
                resizeSmall = small.ints("to").let { ResizeVector(it[0], it[1], small.ints("uint8_hwc"), null, null) },
                resizeModel =
                    model.ints("to").let {
                        ResizeVector(it[0], it[1], null, model.long("sum"), model.ints("first_row_uint8_hwc"))
                    },
                packedClip =
                    PackedClipVector(
                        packed.int("frames"),
                        packed.int("height"),
                        packed.int("width"),
                        packed.int("bytes"),
                        packed.string("sha256"),
                        packed.ints("first_bytes")
                    ),
                prompt =
                    GoldenPrompt(
                        question = p.string("question"),
                        textBeforeVideo = p.string("text_before_video"),
                        textAfterVideo = p.string("text_after_video"),
                        runnerInputs = p.objects("runner_inputs").map { runnerInput(it) }
                    ),
                greedy =
                    GoldenGreedy(
                        greedy.string("question"),
                        greedy.int("clip_frames"),
                        greedy.int("max_new_tokens"),
                        greedy.ints("tokens").toList(),
                        greedy.string("image_sha256")
                    ),
                conversation =
                    GoldenConversation(
                        questions = conv.strings("questions"),
                        textNextTurn = conv.string("text_next_turn"),
                        idsNextTurn = conv.ints("ids_next_turn").toList(),
                        maxNewTokens = conv.int("max_new_tokens"),
                        turn1Tokens = conv.ints("turn1_tokens").toList(),
                        turn1Fed = conv.int("turn1_fed"),
                        turn2Tokens = conv.ints("turn2_tokens").toList(),
                        positions = positions.keys().associateWith { positions.int(it) }
                    )
            )
        }

        private fun indexCases(f: JsonFields): FrameIndexCases {
            val cases = f.obj("cases")
            return FrameIndexCases(
                frames = f.int("frames"),
                rule = SamplingRule.fromWire(f.string("rule")),
                cases =
                    cases.keys().associate { k ->
                        (k.toIntOrNull() ?: throw BundleException("golden frame index case '$k' is not a frame count")) to cases.ints(k)
                    }
            )
        }

        private fun runnerInput(f: JsonFields): RunnerInput = when (f.requireOneOf("kind", listOf("tokens", "text", "image"))) {
            "tokens" -> RunnerInput.Tokens(f.ints("tokens").toList())
            "text" -> RunnerInput.Text(f.string("text"))
            else -> RunnerInput.Image
        }
    }
}
