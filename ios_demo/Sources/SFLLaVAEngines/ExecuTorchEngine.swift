import ExecuTorchLLM
import Foundation
import SFLLaVAKit

/// ExecuTorch's stock multimodal runner (`executorch_llm`, XNNPACK) on an ExecuTorch bundle: text
/// before the video, the whole clip as one tall image, text after, as the bundle's contract says;
/// a follow-up is one more text input on the same runner (no `reset()`), so nothing is re-encoded.
/// The app links the kernel libraries the manifest's `kernel_libraries` name (`kernels_llm`,
/// `kernels_quantized`, `kernels_optimized`, `backend_xnnpack`) with `-all_load`.
public final class ExecuTorchEngine: VideoQAEngine {
    public let name = "executorch_runner"
    public let note = "ExecuTorch MultimodalRunner (XNNPACK) on the phone's CPU; prefill_s includes the vision encoder; "
        + "decode stops at EOS, as the host runner engine's does"
    public private(set) var loadSeconds = 0.0

    private let bundle: BundleFolder
    private let runner: MultimodalRunner
    public private(set) var conversation: Conversation
    /// The clip's runner inputs until the first question carries them into the runner.
    private var pendingClip: [MultimodalInput]?

    public init(bundle: BundleFolder) throws {
        guard let program = bundle.manifest.executorch?.program else {
            throw KitError("\(bundle.name) is a \(bundle.manifest.backend) bundle, not an ExecuTorch one")
        }
        if let data = bundle.manifest.executorch?.data {
            // ExecuTorchLLM's MultimodalRunner(modelPath:tokenizerPath:) takes no data file (executorch 1.5).
            throw KitError("\(bundle.name) keeps weights in \(data), which the ExecuTorch Swift runner cannot load; "
                + "export it without --shared-table for iOS")
        }
        self.bundle = bundle
        conversation = Conversation(manifest: bundle.manifest)
        runner = MultimodalRunner(
            modelPath: bundle.url.appendingPathComponent(program).path,
            tokenizerPath: bundle.artifact("tokenizer", default: "tokenizer.json").path
        )
        let t0 = ProcessInfo.processInfo.systemUptime
        do {
            try runner.load()
        } catch {
            throw KitError("ExecuTorch could not load \(program): \(error.localizedDescription)")
        }
        loadSeconds = ProcessInfo.processInfo.systemUptime - t0
    }

    /// Resets the runner and keeps the packed clip: ExecuTorchLLM has no prefill call, so the clip goes
    /// in with the first question's `generate` (once); follow-ups send only their turn.
    public func loadClip(frames: [[UInt8]]) throws -> ClipTiming {
        let v = bundle.manifest.video
        let packed = try TallImage.pack(frames, width: v.frameWidth, height: v.frameHeight)
        let size = bundle.manifest.packedImageSize
        let image = Image(data: Data(packed), width: size.width, height: size.height, channels: 3)
        runner.reset()
        var inputs: [MultimodalInput] = []
        for input in conversation.clipInputs() {
            switch input {
            case .tokens: continue  // no token input from Swift: bosCount adds BOS to the first text
            case .text(let text): inputs.append(MultimodalInput(text))
            case .image: inputs.append(MultimodalInput(image))
            }
        }
        pendingClip = inputs
        let now = ProcessInfo.processInfo.systemUptime
        return ClipTiming(packed: now, visionDone: nil, ready: now)
    }

    public func ask(_ question: String, start: Double, framesDecoded: Double, clip: ClipTiming?,
                    onText: @escaping (String) -> Void) throws -> EngineAnswer {
        let turn = try conversation.planTurn(question)
        // The clip's inputs go with the first question only: in the runner from then on.
        let inputs = (pendingClip ?? []) + [MultimodalInput(turn.text)]
        pendingClip = nil
        let m = bundle.manifest
        let config = Config {
            $0.sequenceLength = m.context.maxContextLen
            $0.maximumNewTokens = m.context.maxNewTokens
            $0.temperature = 0  // greedy, as the golden tokens and parity were taken
            $0.echoEnabled = false
            $0.bosCount = m.prompt.bosId == nil ? 0 : 1  // the runner adds it at position 0 only
        }
        let stream = TokenStream(eosPieces: m.prompt.eosPieces, maxNewTokens: m.context.maxNewTokens, onUpdate: onText)
        var firstToken: Double?
        do {
            try runner.generate(inputs, config) { [runner] piece in
                if firstToken == nil { firstToken = ProcessInfo.processInfo.systemUptime }
                // EOS (even as the first token) or the budget: stop the runner ourselves.
                if !stream.accept(piece) { runner.stop() }
            }
        } catch {
            throw KitError("ExecuTorch generate failed: \(error.localizedDescription)")
        }
        let text = stream.finish()
        // The Swift runner reports no position: the conversation keeps its upper bound.
        conversation.finishTurn(turn, exactPosition: nil, emittedTokens: stream.tokens)
        let end = ProcessInfo.processInfo.systemUptime
        let timing = AnswerTiming(start: start, framesDecoded: framesDecoded, packed: clip?.packed ?? start,
                                  firstToken: firstToken ?? end, end: end, promptTokens: nil,
                                  generatedTokens: stream.tokens, loadSeconds: loadSeconds)
        return EngineAnswer(text: text, stopReason: stream.stopReason, timing: timing)
    }

    public func stop() {
        runner.stop()
    }
}
