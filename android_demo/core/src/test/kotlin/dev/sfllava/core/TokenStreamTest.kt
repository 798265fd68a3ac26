package dev.sfllava.core

import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import org.junit.Test

class TokenStreamTest {
    private val eos = listOf("<|im_end|>", "</s>")

    @Test
    fun aCharacterSplitAcrossPiecesIsHeldBack() {
        val updates = mutableListOf<String>()
        val s = TokenStream(eos, maxNewTokens = 100, batchMillis = 0, clockMillis = { 0 }) { updates.add(it) }
        val euro = "€".toByteArray() // 3 bytes
        val smile = "\uD83D\uDE00".toByteArray() // 4 bytes
        assertTrue(s.acceptBytes("a".toByteArray() + euro.copyOf(1)))
        assertEquals("a", s.answer)
        assertTrue(s.acceptBytes(euro.copyOfRange(1, 3) + smile.copyOf(2)))
        assertEquals("a€", s.answer)
        assertTrue(s.acceptBytes(smile.copyOfRange(2, 4)))
        assertEquals("a€\uD83D\uDE00", s.answer)
        assertEquals(listOf("a", "a€", "a€\uD83D\uDE00"), updates)
    }

    @Test
    fun eosEndsTheAnswerEvenAsTheFirstTokenAndIsNotShown() {
        val first = TokenStream(eos, 100)
        assertFalse(first.accept("<|im_end|>"))
        assertEquals(StopReason.EOS, first.stopReason)
        assertEquals("", first.finish())
        val later = TokenStream(eos, 100)
        assertTrue(later.accept("It"))
        assertTrue(later.accept(" moves"))
        assertFalse(later.accept(".</s>"))
        assertFalse(later.accept("ignored"))
        assertEquals("It moves.", later.finish())
        assertEquals(3, later.tokens)
    }

    @Test
    fun stopsAtMaxNewTokens() {
        val s = TokenStream(eos, maxNewTokens = 2)
        assertTrue(s.accept("a"))
        assertFalse(s.accept("b"))
        assertEquals(StopReason.MAX_NEW_TOKENS, s.stopReason)
        assertEquals("ab", s.finish())
    }

    @Test
    fun updatesAreBatchedByTime() {
        var now = 0L
        val updates = mutableListOf<String>()
        val s = TokenStream(eos, 100, batchMillis = 50, clockMillis = { now }) { updates.add(it) }
        s.accept("a") // first piece shows at once
        now = 10
        s.accept("b")
        now = 20
        s.accept("c")
        now = 60
        s.accept("d")
        now = 70
        s.accept("e")
        assertEquals(listOf("a", "abcd"), updates)
        s.finish()
        assertEquals(listOf("a", "abcd", "abcde"), updates)
    }

    @Test
    fun anUnfinishedOrInvalidSequenceBecomesAReplacementCharacter() {
        val s = TokenStream(eos, 100)
        s.acceptBytes(byteArrayOf(0x61, 0xE2.toByte(), 0x82.toByte()))
        assertEquals("a", s.answer)
        assertEquals("a\uFFFD", s.finish())
        val bad = TokenStream(eos, 100)
        bad.acceptBytes(byteArrayOf(0xFF.toByte(), 0x62))
        assertEquals("\uFFFDb", bad.finish())
        assertEquals(3, TokenStream.completePrefix(byteArrayOf(0x61, 0x62, 0x63)))
        assertEquals(1, TokenStream.completePrefix(byteArrayOf(0x61, 0xF0.toByte(), 0x9F.toByte(), 0x98.toByte())))
    }
}
