package dev.sfllava.replay

import com.google.gson.GsonBuilder
import com.google.gson.JsonArray
import com.google.gson.JsonObject
import dev.sfllava.core.BundleException
import dev.sfllava.core.Conversation
import dev.sfllava.core.Golden
import dev.sfllava.core.GoldenClip
import dev.sfllava.core.Manifest
import dev.sfllava.core.PromptPlan
import dev.sfllava.core.RunnerCall
import dev.sfllava.core.TallImage
import java.io.File
import java.security.MessageDigest
import kotlin.system.exitProcess

/**
 * `replay BUNDLE OUT [QUESTION [FOLLOW-UP...]]`: builds, with the app's own `core` code, the LlmModule
 * calls of a conversation about the bundle's golden clip (by default its two golden questions) and
 * writes them to OUT/calls.json, one call list per turn on the same runner (no reset between turns),
 * plus the packed clip to OUT/image.bin, for `tests/apps/test_replay.py` to feed to ExecuTorch's C++ runner.
 */
fun main(args: Array<String>) {
    if (args.size < 2) {
        System.err.println("usage: replay BUNDLE OUT [QUESTION [FOLLOW-UP...]]")
        exitProcess(2)
    }
    try {
        val bundle = File(args[0])
        val out = File(args[1]).apply { mkdirs() }
        val manifest = Manifest.parse(readBundleFile(bundle, "manifest.json"))
        val golden = Golden.parse(readBundleFile(bundle, "golden.json"))
        val v = manifest.video
        val frames = GoldenClip.goldenAnswerFrames(golden.greedy.clipFrames, v.frameHeight, v.frameWidth)
        val image = TallImage.pack(frames, v.frameWidth, v.frameHeight)
        val questions = if (args.size > 2) args.drop(2) else golden.conversation.questions
        val plan = PromptPlan.build(manifest, questions[0])
        File(out, "image.bin").writeBytes(image)
        val conversation = Conversation(manifest)
        val turns = JsonArray()
        for ((i, question) in questions.withIndex()) {
            val calls = JsonArray()
            val clip = if (i == 0) conversation.clipCalls() else emptyList()
            val turn = conversation.planTurn(question)
            for (c in clip + turn.calls) calls.add(callJson(c))
            // No runner here to report its position: the bound (a whole answer) stands in for it.
            conversation.finishTurn(turn, null, conversation.maxNewTokens)
            turns.add(
                JsonObject().apply {
                    addProperty("question", question)
                    add("calls", calls)
                }
            )
        }
        val root =
            JsonObject().apply {
                addProperty("num_bos", plan.numBos)
                addProperty("max_new_tokens", plan.maxNewTokens)
                addProperty("image_sha256", sha256(image))
                add("eos_pieces", JsonArray().apply { plan.eosPieces.forEach { add(it) } })
                add("turns", turns)
            }
        File(out, "calls.json").writeText(GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create().toJson(root))
    } catch (e: BundleException) {
        System.err.println("error: ${e.message}")
        exitProcess(1)
    }
}

private fun callJson(c: RunnerCall): JsonObject = JsonObject().apply {
    when (c) {
        is RunnerCall.PrefillText -> {
            addProperty("call", "prefillPrompt")
            addProperty("text", c.text)
        }

        is RunnerCall.PrefillImage -> {
            addProperty("call", "prefillImages")
            addProperty("file", "image.bin")
            addProperty("width", c.width)
            addProperty("height", c.height)
            addProperty("channels", c.channels)
        }

        is RunnerCall.Generate -> {
            addProperty("call", "generate")
            addProperty("text", c.text)
            addProperty("seq_len", c.seqLen)
        }
    }
}

private fun readBundleFile(bundle: File, name: String): String {
    val f = File(bundle, name)
    if (!f.isFile) throw BundleException("$bundle is not a bundle: no $name")
    return f.readText()
}

fun sha256(b: ByteArray): String = MessageDigest.getInstance("SHA-256").digest(b).joinToString("") { "%02x".format(it) }
