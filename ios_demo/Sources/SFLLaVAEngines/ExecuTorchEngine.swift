import ExecuTorchLLM
import Foundation
import SFLLaVAKit

/// ExecuTorch's stock multimodal runner (`executorch_llm`, XNNPACK) on an ExecuTorch bundle: text
/// before the video, the whole clip as one tall image, text after, as the bundle's contract says.
/// The app links the kernel libraries the manifest's `kernel_libraries` name (`kernels_llm`,
/// `kernels_quantized`, `kernels_optimized`, `backend_xnnpack`) with `-all_load`.
public final class ExecuTorchEngine: VideoQAEngine {
    public let name = "executorch_runner"
    public let note = "ExecuTorch MultimodalRunner (XNNPACK) on the phone's CPU; prefill_s includes the vision encoder; "
        + "decode stops at EOS, as the host runner engine's does"
    public private(set) var loadSeconds = 0.0

    private let bundle: BundleFolder
    private let runner: MultimodalRunner

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

    public func answer(plan: PromptPlan, frames: [[UInt8]], start: Double, framesDecoded: Double,
                       onText: @escaping (String) -> Void) throws -> EngineAnswer {
        let v = bundle.manifest.video
        let packed = try TallImage.pack(frames, width: v.frameWidth, height: v.frameHeight)
        let size = bundle.manifest.packedImageSize
        let image = Image(data: Data(packed), width: size.width, height: size.height, channels: 3)
        let packedAt = ProcessInfo.processInfo.systemUptime
        var inputs: [MultimodalInput] = []
        for input in plan.inputs {
            switch input {
            case .tokens: continue  // no token input from Swift: bosCount below adds BOS to the first text
            case .text(let text): inputs.append(MultimodalInput(text))
            case .image: inputs.append(MultimodalInput(image))
            }
        }
        let config = Config {
            $0.sequenceLength = plan.seqLen
            $0.maximumNewTokens = plan.maxNewTokens
            $0.temperature = 0  // greedy, as the golden tokens and parity were taken
            $0.echoEnabled = false
            $0.bosCount = plan.numBos
        }
        let stream = TokenStream(eosPieces: plan.eosPieces, maxNewTokens: plan.maxNewTokens, onUpdate: onText)
        var firstToken: Double?
        runner.reset()
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
        let end = ProcessInfo.processInfo.systemUptime
        let timing = AnswerTiming(start: start, framesDecoded: framesDecoded, packed: packedAt, firstToken: firstToken ?? end,
                                  end: end, promptTokens: nil, generatedTokens: stream.tokens, loadSeconds: loadSeconds)
        return EngineAnswer(text: text, stopReason: stream.stopReason, timing: timing)
    }

    public func stop() {
        runner.stop()
    }
}
