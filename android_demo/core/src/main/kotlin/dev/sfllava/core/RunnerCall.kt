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

/** The `LlmModule` calls for [plan] on a bundle described by [manifest]. */
fun runnerCalls(plan: PromptPlan, manifest: Manifest): List<RunnerCall> {
    val (w, h) = manifest.packedImageSize()
    val inputs = plan.inputs
    return inputs.mapIndexedNotNull { i, input ->
        when (input) {
            is RunnerInput.Tokens -> null

            // LlmModule takes no token ids: numBos at construction adds BOS
            // The last input (the text after the question) starts generation.
            is RunnerInput.Text -> if (i ==
                inputs.lastIndex
            ) {
                RunnerCall.Generate(input.text, plan.seqLen)
            } else {
                RunnerCall.PrefillText(input.text)
            }

            RunnerInput.Image -> RunnerCall.PrefillImage(w, h, 3)
        }
    }
}
