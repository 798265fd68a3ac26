package dev.sfllava.core

import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertIs
import org.junit.Test

class PromptPlanTest {
    @Test
    fun goldenQuestionGivesTheGoldenRunnerInputs() {
        for (dir in Bundles.dirs) {
            val m = Bundles.manifest(dir)
            val g = Bundles.golden(dir)
            val plan = PromptPlan.build(m, g.prompt.question)
            assertEquals(g.prompt.textBeforeVideo, plan.textBeforeVideo, "$dir")
            assertEquals(g.prompt.textAfterVideo, plan.textAfterVideo, "$dir")
            assertEquals(g.prompt.runnerInputs, plan.inputs, "$dir")
            assertEquals(if (m.prompt.bosId == null) 0 else 1, plan.numBos)
        }
    }

    @Test
    fun llmModuleCallsFollowTheInputs() {
        for (dir in Bundles.dirs) {
            val m = Bundles.manifest(dir)
            val calls = runnerCalls(PromptPlan.build(m, "  Where does the square go?\n"), m)
            assertEquals(3, calls.size)
            assertEquals(RunnerCall.PrefillText(m.prompt.textBeforeVideo), calls[0])
            assertEquals(RunnerCall.PrefillImage(m.video.frameWidth, m.video.frames * m.video.frameHeight, 3), calls[1])
            val gen = assertIs<RunnerCall.Generate>(calls[2])
            assertContains(gen.text, "Where does the square go?")
            assertEquals(m.context.maxContextLen, gen.seqLen)
        }
    }

    @Test
    fun badQuestionsAreRefused() {
        val m = Bundles.manifest(Bundles.dirs.first())
        assertContains(assertFailsWith<BundleException> { PromptPlan.build(m, " \n\t") }.message!!, "ask a question")
        assertContains(assertFailsWith<BundleException> { PromptPlan.build(m, "what is in <image>?") }.message!!, "must not contain")
    }
}
