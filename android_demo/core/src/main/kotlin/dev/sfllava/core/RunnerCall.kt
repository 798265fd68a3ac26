package dev.sfllava.core

/**
 * One call on ExecuTorch's `LlmModule`, in the order the app makes them for a question. The app's
 * engine executes this list; the Linux replay writes it out and feeds the same inputs to the C++
 * `MultimodalRunner`, so what is tested is what the phone does.
 */
sealed class RunnerCall {
    /** `prefillPrompt(text)`: the runner prepends the constructor's `numBos` BOS tokens to the first text. */
    data class PrefillText(val text: String) : RunnerCall()

    /** `prefillImages(buffer, width, height, channels)` with the packed clip (uint8, CHW). */
    data class PrefillImage(val width: Int, val height: Int, val channels: Int) : RunnerCall()

    /** `generate(text, seqLen, callback, echo = false)`: prefills [text], then streams the answer. */
    data class Generate(val text: String, val seqLen: Int) : RunnerCall()
}

/** The `LlmModule` calls for [plan], a first question, on a freshly reset runner: the clip, then the question. */
fun runnerCalls(plan: PromptPlan, manifest: Manifest): List<RunnerCall> {
    val conversation = Conversation(manifest)
    return conversation.clipCalls() + conversation.planTurn(plan.question).calls
}
