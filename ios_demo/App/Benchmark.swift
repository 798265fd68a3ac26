import Foundation
import SFLLaVAEngines
import SFLLaVAKit
import SwiftUI
import UIKit

/// Benchmark mode, from launch arguments: `-benchmark NAME [-runs 5] [-warmup 1] [-engine auto|executorch|coreml]`.
struct BenchmarkRequest {
    let bundle: String
    let runs: Int
    let warmup: Int

    init?(arguments: [String]) {
        func value(_ flag: String) -> String? {
            guard let i = arguments.firstIndex(of: flag), i + 1 < arguments.count else { return nil }
            return arguments[i + 1]
        }
        guard let name = value("-benchmark") else { return nil }
        bundle = name
        runs = min(max(Int(value("-runs") ?? "") ?? 5, 1), 100)
        warmup = min(max(Int(value("-warmup") ?? "") ?? 1, 0), 10)
    }
}

/// Runs the bundle's golden clip (rebuilt from its formula, no video file) and writes the host
/// `bench` JSON to Documents/bench/NAME.json, or the reason it failed to NAME.error.
struct BenchmarkView: View {
    let request: BenchmarkRequest
    @State private var status = "starting"

    var body: some View {
        Text(status).padding().task { await runBenchmark() }
    }

    private func runBenchmark() async {
        let out = BundleLibrary.root.appendingPathComponent("bench")
        let queue = EngineQueue()
        do {
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let bundle = try BundleLibrary.load(request.bundle)
            let m = bundle.manifest
            let engine: VideoQAEngine = m.backend == "coreml"
                ? try await CoreMLEngine(bundle: bundle, cache: BundleLibrary.compiledCache)
                : try await queue.run { try ExecuTorchEngine(bundle: bundle) }
            let questions = bundle.golden.conversation.questions
            var runs: [EngineRun] = []
            for i in 0..<(request.warmup + request.runs) {
                status = i < request.warmup ? "warm-up \(i + 1)" : "run \(i - request.warmup + 1)/\(request.runs)"
                // As a user asks: the clip and the golden question, then its follow-up (nothing re-encoded).
                let (result, followUp) = try await queue.run {
                    let start = ProcessInfo.processInfo.systemUptime
                    let frames = try GoldenClip.goldenAnswerFrames(m.video.frames, outHeight: m.video.frameHeight,
                                                                   outWidth: m.video.frameWidth)
                    let decoded = ProcessInfo.processInfo.systemUptime
                    let clip = try engine.loadClip(frames: frames)
                    let first = try engine.ask(questions[0], start: start, framesDecoded: decoded, clip: clip) { _ in }
                    let again = ProcessInfo.processInfo.systemUptime
                    let second = try engine.ask(questions[1], start: again, framesDecoded: again, clip: nil) { _ in }
                    return (first, second)
                }
                var run = result.timing.engineRun(note: engine.note)
                run.followupTimeToFirstTokenS = followUp.timing.timeToFirstToken
                run.followupPromptTokens = followUp.timing.promptTokens
                run.peakRssMb = Self.peakFootprintMb()
                if i >= request.warmup { runs.append(run) }
            }
            let device = DeviceInfo(name: Self.machine(), os: "iOS \(UIDevice.current.systemVersion)", abi: "arm64",
                                    memoryMb: Int(ProcessInfo.processInfo.physicalMemory >> 20))
            let report = BenchReport(manifest: m, bundle: bundle.name, video: "golden clip (\(m.video.frames) synthetic frames)",
                                     steps: m.context.maxNewTokens, threads: ProcessInfo.processInfo.activeProcessorCount,
                                     device: device, engine: engine.name, note: engine.note, runs: runs)
            try report.json().write(to: out.appendingPathComponent("\(request.bundle).json"), options: .atomic)
            status = "wrote bench/\(request.bundle).json"
        } catch {
            let message = (error as? KitError)?.message ?? error.localizedDescription
            try? (message + "\n").write(to: out.appendingPathComponent("\(request.bundle).error"), atomically: true, encoding: .utf8)
            status = "failed: \(message)"
        }
    }

    /// The process's peak physical footprint (what iOS's memory limit counts), in MB.
    static func peakFootprintMb() -> Double? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        return kr == KERN_SUCCESS ? Double(info.ledger_phys_footprint_peak) / 1_048_576 : nil
    }

    static func machine() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
