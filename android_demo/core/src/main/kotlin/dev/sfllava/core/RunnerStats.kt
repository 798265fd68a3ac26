package dev.sfllava.core

/**
 * The runner's `onStats` JSON (ExecuTorch `stats_to_json_string`), the fields the app reports.
 * `inference_start_ms` is set when `generate()` starts, so prefill calls made before it (the text
 * before the video, the clip) are not inside the runner's own prefill time: the app times those itself.
 */
data class RunnerStats(
    val promptTokens: Int,
    val generatedTokens: Int,
    val inferenceStartMs: Long,
    val promptEvalEndMs: Long,
    val firstTokenMs: Long,
    val inferenceEndMs: Long
) {
    /** Decode rate over the tokens after the first, as the runner itself measures it. */
    val decodeTokensPerSecond: Double
        get() = if (inferenceEndMs > promptEvalEndMs) generatedTokens * 1000.0 / (inferenceEndMs - promptEvalEndMs) else 0.0

    val decodeSeconds: Double get() = (inferenceEndMs - promptEvalEndMs) / 1000.0

    companion object {
        fun parse(json: String): RunnerStats {
            val s = JsonFields.parse(json, "runner stats")
            return RunnerStats(
                promptTokens = s.int("prompt_tokens"),
                generatedTokens = s.int("generated_tokens"),
                inferenceStartMs = s.long("inference_start_ms"),
                promptEvalEndMs = s.long("prompt_eval_end_ms"),
                firstTokenMs = s.long("first_token_ms"),
                inferenceEndMs = s.long("inference_end_ms")
            )
        }
    }
}

/**
 * One answer's timeline as the app measures it (milliseconds on one monotonic clock) plus the
 * runner's stats; [toEngineRun] gives the `bench` schema's per-run fields.
 */
data class AnswerTiming(
    val startMs: Long,
    val framesDecodedMs: Long,
    val packedMs: Long,
    val firstTokenMs: Long,
    val endMs: Long,
    val stats: RunnerStats?,
    val loadSeconds: Double? = null,
    val peakRssMb: Double? = null
) {
    val timeToFirstTokenSeconds: Double get() = (firstTokenMs - startMs) / 1000.0

    /** Vision encoder and text prefill together: the runner runs the encoder inside its image prefill. */
    val prefillSeconds: Double get() = (firstTokenMs - packedMs) / 1000.0

    /**
     * The `bench` fields; with [followUp], a second question about the same clip asked right after
     * this answer: its time to first token and the tokens its turn prefilled (the runner counts prompt
     * tokens from position 0, so the turn is the difference).
     */
    fun toEngineRun(followUp: AnswerTiming? = null): Map<String, Any> = buildMap {
        put("decode_video_s", (framesDecodedMs - startMs) / 1000.0)
        put("preprocess_s", (packedMs - framesDecodedMs) / 1000.0)
        put("prefill_s", prefillSeconds)
        put("time_to_first_token_s", timeToFirstTokenSeconds)
        put("wall_s", (endMs - startMs) / 1000.0)
        loadSeconds?.let { put("load_s", it) }
        peakRssMb?.let { put("peak_rss_mb", it) }
        stats?.let {
            put("prompt_tokens", it.promptTokens)
            put("generated_tokens", it.generatedTokens)
            put("decode_s", it.decodeSeconds)
            put("decode_tokens_per_second", it.decodeTokensPerSecond)
            if (prefillSeconds > 0) put("prefill_tokens_per_second", it.promptTokens / prefillSeconds)
        }
        followUp?.let { f ->
            put("followup_time_to_first_token_s", f.timeToFirstTokenSeconds)
            val a = stats
            val b = f.stats
            if (a != null && b != null) put("followup_prompt_tokens", b.promptTokens - a.promptTokens - a.generatedTokens)
        }
        put("note", "prefill_s includes vision_encoder (the runner encodes the clip inside its image prefill)")
    }
}
