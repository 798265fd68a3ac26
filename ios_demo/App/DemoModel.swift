import Foundation
import SFLLaVAEngines
import SFLLaVAKit
import SwiftUI

/// Numbers shown under the answer.
struct AnswerStats {
    let timeToFirstToken: Double
    let prefillTokensPerSecond: Double?
    let decodeTokensPerSecond: Double?
    let tokens: Int
    let stop: StopReason
}

/// Screen state. Engine work goes through `EngineQueue` (never the main actor); UI updates from the
/// token stream are already batched by `TokenStream` and hop to the main actor here.
@MainActor
final class DemoModel: ObservableObject {
    @Published var bundles: [String] = []
    @Published var selected: String?
    @Published var video: URL?
    @Published var thumbnails: [UIImage] = []
    @Published var answer = ""
    @Published var stats: AnswerStats?
    @Published var error: String?
    @Published var busy: String?

    private let queue = EngineQueue()
    private var bundle: BundleFolder?
    private var engine: VideoQAEngine?

    init() {
        refresh()
    }

    func refresh() {
        bundles = BundleLibrary.names()
        if selected == nil, let first = bundles.first { select(first) }
    }

    func select(_ name: String) {
        selected = name
        error = nil
        run("Loading \(name)") { [self] in
            let b = try BundleLibrary.load(name)
            let e = try await makeEngine(b)
            bundle = b
            engine = e
        }
    }

    func pick(video url: URL) {
        video = url
        thumbnails = []
        error = nil
        guard let spec = bundle?.manifest.video else { return }
        run("Reading frames") { [self] in
            thumbnails = try await VideoFrameReader.read(url, spec: spec).thumbnails
        }
    }

    func ask(_ question: String) {
        guard let b = bundle, let e = engine else { error = "Pick a bundle first"; return }
        guard let url = video else { error = "Pick a video first"; return }
        answer = ""
        stats = nil
        error = nil
        run("Answering") { [self] in
            let plan = try PromptPlan(manifest: b.manifest, question: question)
            let start = ProcessInfo.processInfo.systemUptime
            let clip = try await VideoFrameReader.read(url, spec: b.manifest.video)
            thumbnails = clip.thumbnails
            let decoded = ProcessInfo.processInfo.systemUptime
            let result = try await queue.run {
                try e.answer(plan: plan, frames: clip.frames, start: start, framesDecoded: decoded) { text in
                    Task { @MainActor in self.answer = text }
                }
            }
            let run = result.timing.engineRun(note: e.note)
            answer = result.text
            stats = AnswerStats(timeToFirstToken: result.timing.timeToFirstToken,
                                prefillTokensPerSecond: run.prefillTokensPerSecond,
                                decodeTokensPerSecond: run.decodeTokensPerSecond,
                                tokens: result.timing.generatedTokens, stop: result.stopReason)
        }
    }

    /// The Stop button: engines allow `stop()` from any thread.
    func stop() {
        engine?.stop()
    }

    private func makeEngine(_ b: BundleFolder) async throws -> VideoQAEngine {
        if b.manifest.backend == "coreml" {
            return try await CoreMLEngine(bundle: b, cache: BundleLibrary.compiledCache)
        }
        return try await queue.run { try ExecuTorchEngine(bundle: b) }
    }

    /// Runs `work` with a busy label; any error becomes the one-line message on screen.
    private func run(_ label: String, _ work: @escaping () async throws -> Void) {
        busy = label
        Task {
            do {
                try await work()
            } catch let e as KitError {
                error = e.message
            } catch {
                self.error = error.localizedDescription
            }
            busy = nil
        }
    }
}
