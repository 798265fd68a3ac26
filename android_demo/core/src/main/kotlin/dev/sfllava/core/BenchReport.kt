package dev.sfllava.core

import com.google.gson.GsonBuilder
import com.google.gson.JsonArray
import com.google.gson.JsonObject

/** Where the numbers were taken (the `bench` schema's `device`). */
data class DeviceInfo(val name: String, val os: String, val abi: String?, val memoryMb: Long?)

/**
 * The host `bench` JSON (`schema/bench.schema.json`, `sfllava-mobile bench --json`) from a phone's
 * runs: one engine whose numbers are the medians of [runs], with every run listed.
 */
object BenchReport {
    const val ENGINE = "android_llmmodule"
    const val ENGINE_NOTE =
        "ExecuTorch LlmModule (org.pytorch:executorch-android, XNNPACK) on the phone's CPU; " +
            "prefill_s includes the vision encoder; decode stops at EOS, as the host runner engine's does"

    fun build(
        manifest: Manifest,
        bundle: String,
        video: String,
        steps: Int,
        threads: Int,
        device: DeviceInfo,
        runs: List<Map<String, Any>>
    ): String {
        require(runs.isNotEmpty()) { "no runs to report" }
        val engine = JsonObject()
        val keys = runs.flatMap { it.keys }.toSortedSet()
        for (k in keys) {
            val values = runs.mapNotNull { it[k] as? Number }.map { it.toDouble() }
            when {
                values.size == runs.size && k in INT_KEYS -> engine.addProperty(k, median(values).toLong())
                values.size == runs.size -> engine.addProperty(k, median(values))
                else -> runs.firstNotNullOfOrNull { it[k] as? String }?.let { engine.addProperty(k, it) }
            }
        }
        if (runs.size > 1) {
            engine.addProperty("repeats", runs.size)
            engine.add("runs", JsonArray().apply { runs.forEach { add(toJson(it)) } })
        }
        val root = JsonObject()
        root.addProperty("bench_version", 1)
        root.addProperty("bundle", bundle)
        root.addProperty("backend", manifest.backend)
        root.addProperty("video", video)
        root.addProperty("steps", steps)
        root.addProperty("threads", threads)
        root.addProperty("model", manifest.modelName)
        root.addProperty("recipe", manifest.recipe)
        root.addProperty("frames", manifest.video.frames)
        root.addProperty("visual_tokens", manifest.visualTokens)
        root.addProperty("artifact_bytes", manifest.totalBytes)
        root.add(
            "device",
            JsonObject().apply {
                addProperty("name", device.name)
                addProperty("os", device.os)
                device.abi?.let { addProperty("abi", it) }
                device.memoryMb?.let { addProperty("memory_mb", it) }
            }
        )
        root.add("engines", JsonObject().apply { add(ENGINE, engine) })
        root.add("engine_notes", JsonObject().apply { addProperty(ENGINE, ENGINE_NOTE) })
        return GsonBuilder().setPrettyPrinting().create().toJson(root)
    }

    private val INT_KEYS = setOf("prompt_tokens", "generated_tokens", "followup_prompt_tokens")

    private fun toJson(run: Map<String, Any>): JsonObject = JsonObject().apply {
        for ((k, v) in run.toSortedMap()) {
            when (v) {
                is Int, is Long -> addProperty(k, (v as Number).toLong())
                is Number -> addProperty(k, v.toDouble())
                is String -> addProperty(k, v)
            }
        }
    }

    fun median(values: List<Double>): Double {
        val s = values.sorted()
        val n = s.size
        return if (n % 2 == 1) s[n / 2] else (s[n / 2 - 1] + s[n / 2]) / 2
    }
}
