package dev.sfllava.core

import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import org.junit.Test

class ConversationTest {
    /** What the runner's stats say after a turn that ends at [position] having fed [fed] answer tokens. */
    private fun stats(position: Int, fed: Int) = RunnerStats(position - fed, fed, 0, 0, 0, 0)

    @Test
    fun twoTurnPlanFollowsTheGoldenConversation() {
        for (dir in Bundles.dirs) {
            val m = Bundles.manifest(dir)
            val g = Bundles.golden(dir).conversation
            val c = Conversation(m)
            val clip = c.clipCalls()
            assertEquals(RunnerCall.PrefillImage(m.video.frameWidth, m.video.frames * m.video.frameHeight, 3), clip.last())
            assertEquals(m.prompt.textBeforeVideo.isNotEmpty(), clip.first() == RunnerCall.PrefillText(m.prompt.textBeforeVideo))
            assertTrue(c.position >= g.positions.getValue("clip"), "$dir: the clip's bound is below its real size")

            val first = c.planTurn(g.questions[0])
            val firstText = m.prompt.textAfterVideo.replace("{question}", g.questions[0])
            assertEquals(listOf(RunnerCall.Generate(firstText, m.context.maxContextLen)), first.calls)
            c.finishTurn(first, stats(g.positions.getValue("turn1"), g.turn1Fed), g.turn1Tokens.size)
            assertEquals(g.positions.getValue("turn1"), c.position)

            // The follow-up is one generate() with the manifest's next-turn text: no reset, no clip, no prompt again.
            val second = c.planTurn(g.questions[1])
            assertEquals(listOf(RunnerCall.Generate(g.textNextTurn, m.context.maxContextLen)), second.calls)
            assertTrue(second.textTokenBound >= g.idsNextTurn.size, "$dir: the token bound is below the real count")
            val fed2 = g.turn2Tokens.size - (if (g.turn2Tokens.size == g.maxNewTokens) 1 else 0)
            c.finishTurn(second, stats(g.positions.getValue("turn2"), fed2), g.turn2Tokens.size)
            assertEquals(g.positions.getValue("turn2"), c.position)
            assertEquals(2, c.turns)
        }
    }

    @Test
    fun aFollowUpThatWouldOverflowIsRefusedAndStartingOverRecovers() {
        val dir = Bundles.dirs.first()
        val m = Bundles.manifest(dir)
        val g = Bundles.golden(dir).conversation
        val bound = Conversation.tokenBound(g.textNextTurn)
        // The runner reports where the first answer ended: exactly room for the follow-up and a whole
        // answer is accepted, one position less is refused, before any call is made.
        val edge = m.context.maxContextLen - bound - m.context.maxNewTokens
        for ((end, fits) in listOf(edge to true, edge + 1 to false)) {
            val c = Conversation(m)
            c.clipCalls()
            c.finishTurn(c.planTurn(g.questions[0]), stats(end, g.turn1Fed), g.turn1Tokens.size)
            if (fits) {
                assertEquals(g.textNextTurn, c.planTurn(g.questions[1]).text)
                continue
            }
            val e = assertFailsWith<ContextFullException> { c.planTurn(g.questions[1]) }
            assertContains(e.message!!, "start over")
            assertTrue('\n' !in e.message!!)
            assertEquals(1, c.turns) // nothing was planned
            c.startOver()
            assertFailsWith<BundleException> { c.planTurn(g.questions[0]) } // the runner was reset: the clip goes in again
            c.clipCalls()
            assertEquals(0, c.turns)
            assertTrue(c.planTurn(g.questions[0]).text.contains(g.questions[0]))
        }
    }

    @Test
    fun withoutStatsThePositionStaysAnUpperBound() {
        val dir = Bundles.dirs.first()
        val g = Bundles.golden(dir).conversation
        val c = Conversation(Bundles.manifest(dir))
        c.clipCalls()
        val first = c.planTurn(g.questions[0])
        c.finishTurn(first, null, g.turn1Tokens.size)
        assertTrue(c.position >= g.positions.getValue("turn1"))
    }

    @Test
    fun badQuestionsAndOrderAreRefused() {
        val c = Conversation(Bundles.manifest(Bundles.dirs.first()))
        assertContains(assertFailsWith<BundleException> { c.planTurn("Why?") }.message!!, "load a clip")
        c.clipCalls()
        assertContains(assertFailsWith<BundleException> { c.planTurn(" \n") }.message!!, "ask a question")
        assertContains(assertFailsWith<BundleException> { c.planTurn("<image>?") }.message!!, "must not contain")
        assertEquals(Conversation.tokenBound("héllo"), 7) // bytes, not characters, plus one
    }
}
