package dev.sfllava.core

import com.google.gson.JsonParser
import java.io.File
import kotlin.test.assertEquals
import org.junit.Test

class BenchReportTest {
    private val stats =
        """{"prompt_tokens":130,"generated_tokens":8,"model_load_start_ms":1,"model_load_end_ms":2,
           "inference_start_ms":1000,"inference_end_ms":1500,"prompt_eval_end_ms":1100,"first_token_ms":1100,
           "aggregate_sampling_time_ms":3,"SCALING_FACTOR_UNITS_PER_SECOND":1000}"""

    @Test
    fun runnerStatsAndTimelineGiveTheBenchFields() {
        val s = RunnerStats.parse(stats)
        assertEquals(20.0, s.decodeTokensPerSecond)
        val t = AnswerTiming(startMs = 0, framesDecodedMs = 200, packedMs = 250, firstTokenMs = 1250, endMs = 1650, stats = s)
        val run = t.toEngineRun()
        assertEquals(0.2, run["decode_video_s"])
        assertEquals(1.0, run["prefill_s"])
        assertEquals(130.0, run["prefill_tokens_per_second"])
        assertEquals(1.25, run["time_to_first_token_s"])
        assertEquals(null, run["followup_time_to_first_token_s"])
        // A follow-up asked at 2000 ms: 30 more prompt tokens after the 130 + 8 the first turn left.
        val f = RunnerStats(168, 5, 2000, 2040, 2040, 2200)
        val both = t.toEngineRun(AnswerTiming(2000, 2000, 2000, 2040, 2200, f))
        assertEquals(0.04, both["followup_time_to_first_token_s"])
        assertEquals(30, both["followup_prompt_tokens"])
    }

    @Test
    fun reportHasMediansAndEveryRun() {
        val dir = Bundles.dirs.first()
        val m = Bundles.manifest(dir)
        val runs =
            listOf(3000L, 1000L, 2000L).map { ttft ->
                val first = AnswerTiming(0, 100, 150, ttft, ttft + 400, RunnerStats.parse(stats), loadSeconds = 0.5)
                first.toEngineRun(AnswerTiming(5000, 5000, 5000, 5000 + ttft / 100, 5500, RunnerStats(160, 4, 5000, 5000, 5000, 5500)))
            }
        val json = BenchReport.build(m, dir.path, "golden clip", 8, 4, DeviceInfo("Pixel 9 Pro", "Android 15", "arm64-v8a", 16000), runs)
        val root = JsonParser.parseString(json).asJsonObject
        val engine = root.getAsJsonObject("engines").getAsJsonObject(BenchReport.ENGINE)
        assertEquals(2.0, engine.get("time_to_first_token_s").asDouble)
        assertEquals(3, engine.get("repeats").asInt)
        assertEquals(130, engine.get("prompt_tokens").asInt)
        assertEquals(0.02, engine.get("followup_time_to_first_token_s").asDouble)
        assertEquals(22, engine.get("followup_prompt_tokens").asInt)
        assertEquals(m.visualTokens, root.get("visual_tokens").asInt)
        // tests/android/test_core.py validates what is written here against schema/bench.schema.json.
        System.getProperty("sfllava.bench_out")?.let { File(it).writeText(json) }
    }
}
