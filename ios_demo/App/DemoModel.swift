import Foundation
import SFLLaVAEngines
import SFLLaVAKit
import SwiftUI

/// Numbers shown under an answer: the time to first token runs from the question (a first question
/// includes the clip unless it was prepared while the user typed); `followUp`: the clip was already in.
struct AnswerStats {
    let timeToFirstToken: Double
    let decodeTokensPerSecond: Double?
    let tokens: Int
    let stop: StopReason
    let followUp: Bool
    let contextLeft: Int
}

/// One question and its answer in the conversation about the current clip.
struct Exchange: Identifiable {
    let id = UUID()
    let question: String
    let answer: String
    let stats: AnswerStats?
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
    /// Earlier questions about this clip, oldest first (the current one is `answer`).
    @Published var history: [Exchange] = []
    @Published var error: String?
    @Published var busy: String?
    /// The last question did not fit the context: the screen offers to start over.
    @Published var contextFull = false
    /// The clip is in the engine: the next question is a follow-up unless the conversation starts over.
    @Published var clipReady = false
    private var currentQuestion: String?

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
            resetConversation()
        }
    }

    private func resetConversation() {
        clipReady = false
        contextFull = false
        history = []
        answer = ""
        stats = nil
        currentQuestion = nil
    }

    /// A new clip: read and put into the engine at once, while the user types.
    func pick(video url: URL) {
        video = url
        thumbnails = []
        error = nil
        resetConversation()
        guard engine != nil else { return }
        run("Reading the clip") { [self] in _ = try await prepareClip(url) }
    }

    /// Start over: forget the questions, keep the clip (it goes into the reset engine again).
    func startOver() {
        guard let url = video else { return }
        error = nil
        resetConversation()
        run("Starting over") { [self] in _ = try await prepareClip(url) }
    }

    /// Decodes the clip and loads it into the engine; returns when the frames were decoded and the timing.
    private func prepareClip(_ url: URL) async throws -> (Double, ClipTiming) {
        guard let b = bundle, let e = engine else { throw KitError("Pick a bundle first") }
        let clip = try await VideoFrameReader.read(url, spec: b.manifest.video)
        thumbnails = clip.thumbnails
        let decoded = ProcessInfo.processInfo.systemUptime
        let timing = try await queue.run { try e.loadClip(frames: clip.frames) }
        clipReady = true
        return (decoded, timing)
    }

    func ask(_ question: String) {
        guard let e = engine else { error = "Pick a bundle first"; return }
        guard let url = video else { error = "Pick a video first"; return }
        if let q = currentQuestion { history.append(Exchange(question: q, answer: answer, stats: stats)) }
        currentQuestion = question.trimmingCharacters(in: .whitespacesAndNewlines)
        answer = ""
        stats = nil
        error = nil
        contextFull = false
        run("Answering") { [self] in
            let start = ProcessInfo.processInfo.systemUptime
            let followUp = e.conversation.clipLoaded
            // The first question pays for the clip if it is not in the engine yet; a follow-up does not.
            var decoded = start
            var clip: ClipTiming?
            if !followUp {
                let prepared = try await prepareClip(url)
                decoded = prepared.0
                clip = prepared.1
            }
            let result: EngineAnswer
            do {
                result = try await queue.run { [decoded, clip] in
                    try e.ask(question, start: start, framesDecoded: decoded, clip: clip) { text in
                        Task { @MainActor in self.answer = text }
                    }
                }
            } catch let full as ContextFull {
                contextFull = true
                throw KitError(full.message)
            }
            let run = result.timing.engineRun(note: e.note)
            answer = result.text
            stats = AnswerStats(timeToFirstToken: result.timing.timeToFirstToken,
                                decodeTokensPerSecond: run.decodeTokensPerSecond,
                                tokens: result.timing.generatedTokens, stop: result.stopReason,
                                followUp: followUp, contextLeft: e.conversation.remaining)
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
