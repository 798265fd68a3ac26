package dev.sfllava.core

/** The bundle schema version this code reads (`schema/manifest.schema.json`, `sfllava_mobile.manifest`). */
const val SCHEMA_VERSION = 4

/** Method names of the on-device contract. */
val METHOD_NAMES = listOf("vision_encoder", "token_embedding", "text_decoder")

data class VideoSpec(
    val frames: Int,
    val frameHeight: Int,
    val frameWidth: Int,
    val samplingRule: SamplingRule,
    val normalizationInGraph: Boolean
)

data class PromptSpec(
    val template: String,
    val textBeforeVideo: String,
    val textAfterVideo: String,
    val questionPlaceholder: String,
    val system: String?,
    val answerPrefix: String,
    val bosId: Int?,
    val eosIds: List<Int>,
    val eosPieces: List<String>,
    /** A follow-up's runner text, [questionPlaceholder] to substitute: closes the answer, opens the next user turn. */
    val textNextTurn: String
)

data class TensorSpec(val dtype: String, val shape: List<String>, val layout: String?)

data class MethodSpec(val artifact: String, val inputs: List<TensorSpec>, val output: TensorSpec)

data class ContextSpec(val maxSeqLen: Int, val maxContextLen: Int, val textAllowance: Int, val maxNewTokens: Int, val turns: Int)

data class KernelLibrary(val name: String, val android: String, val ios: String, val methods: List<String>)

/** [data]: the external data file (`.ptd`) part of the program's constants live in, or null. */
data class ExecuTorchSpec(val program: String, val data: String?, val kernelLibraries: List<KernelLibrary>)

/** What an app reads from `manifest.json`; the parts it does not use stay in the file. */
data class Manifest(
    val schemaVersion: Int,
    val toolkitVersion: String,
    val backend: String,
    val modelName: String,
    val family: String,
    val video: VideoSpec,
    val visualTokens: Int,
    val prompt: PromptSpec,
    val artifacts: Map<String, String>,
    val methods: Map<String, MethodSpec>,
    val context: ContextSpec,
    val recipe: String,
    val totalBytes: Long,
    val executorch: ExecuTorchSpec?
) {
    companion object {
        /** Parses and checks `manifest.json`; a bundle of another schema version or shape is a [BundleException]. */
        fun parse(json: String): Manifest {
            val m = JsonFields.parse(json, "manifest")
            val version = m.int("schema_version")
            if (version != SCHEMA_VERSION) {
                throw BundleException(
                    "manifest has schema_version $version; this app reads $SCHEMA_VERSION: " +
                        "re-export the bundle with a matching sfllava-mobile"
                )
            }
            val backend = m.requireOneOf("backend", listOf("executorch", "coreml"))
            val v = m.obj("video")
            val p = m.obj("prompt")
            val eosIds = p.ints("eos_ids").toList()
            val eosPieces = p.strings("eos_pieces")
            if (eosIds.isEmpty() || eosIds.size != eosPieces.size) {
                throw BundleException("manifest.prompt: eos_ids and eos_pieces must be non-empty and the same length")
            }
            val methods = m.obj("methods")
            val missing = METHOD_NAMES.filterNot { methods.has(it) }
            if (missing.isNotEmpty()) throw BundleException("manifest.methods: missing ${missing.joinToString()}")
            val c = m.obj("context")
            val artifacts = m.obj("artifacts")
            val video =
                VideoSpec(
                    frames = v.int("frames"),
                    frameHeight = v.int("frame_height"),
                    frameWidth = v.int("frame_width"),
                    samplingRule = SamplingRule.fromWire(v.string("sampling_rule")),
                    normalizationInGraph = v.obj("normalization").bool("in_graph")
                )
            if (video.frames < 1 || video.frameHeight < 1 || video.frameWidth < 1) {
                throw BundleException("manifest.video: frames and frame size must be positive")
            }
            return Manifest(
                schemaVersion = version,
                toolkitVersion = m.string("toolkit_version"),
                backend = backend,
                modelName = m.obj("model").string("name"),
                family = m.obj("model").string("family"),
                video = video,
                visualTokens = m.int("visual_tokens"),
                prompt =
                    PromptSpec(
                        template = p.string("template"),
                        textBeforeVideo = p.string("text_before_video"),
                        textAfterVideo = p.string("text_after_video"),
                        questionPlaceholder = p.string("question_placeholder"),
                        system = p.stringOrNull("system"),
                        answerPrefix = p.string("answer_prefix"),
                        bosId = p.intOrNull("bos_id"),
                        eosIds = eosIds,
                        eosPieces = eosPieces,
                        textNextTurn = p.string("text_next_turn")
                    ),
                artifacts = artifacts.keys().associateWith { artifacts.string(it) },
                methods = METHOD_NAMES.associateWith { parseMethod(methods.obj(it)) },
                context =
                    ContextSpec(
                        maxSeqLen = c.int("max_seq_len"),
                        maxContextLen = c.int("max_context_len"),
                        textAllowance = c.int("text_allowance"),
                        maxNewTokens = c.int("max_new_tokens"),
                        turns = c.int("turns")
                    ),
                recipe = m.obj("quantization").string("recipe"),
                totalBytes = m.obj("size").long("total_bytes"),
                executorch = if (backend == "executorch") parseExecuTorch(m.obj("executorch")) else null
            )
        }

        private fun parseTensor(t: JsonFields) = TensorSpec(
            dtype = t.requireOneOf("dtype", listOf("uint8", "int32", "int64", "float16", "float32")),
            shape = t.scalarsAsText("shape"),
            layout = if (t.has("layout")) t.string("layout") else null
        )

        private fun parseMethod(f: JsonFields) = MethodSpec(
            artifact = f.string("artifact"),
            inputs = f.objects("inputs").map { parseTensor(it) },
            output = parseTensor(f.obj("output"))
        )

        private fun parseExecuTorch(e: JsonFields) = ExecuTorchSpec(
            program = e.string("program"),
            data = if (e.has("data")) e.string("data") else null,
            kernelLibraries =
                e.objects("kernel_libraries").map {
                    KernelLibrary(it.string("name"), it.string("android"), it.string("ios"), it.strings("methods"))
                }
        )
    }

    /** The bundle file holding the ExecuTorch program. */
    fun programFile(): String =
        executorch?.program ?: throw BundleException("this is a $backend bundle; the Android app runs ExecuTorch bundles")

    /** The program's external data file (`export --shared-table`), or null: the runner's data path. */
    fun dataFile(): String? = executorch?.data

    /** BOS tokens to ask `LlmModule` for at construction (its only way to add BOS). */
    val numBos: Int get() = if (prompt.bosId == null) 0 else 1

    /** The image the runner gets: width W, height T*H, 3 channels. */
    fun packedImageSize(): Pair<Int, Int> = video.frameWidth to TallImage.packedHeight(video.frames, video.frameHeight)
}
