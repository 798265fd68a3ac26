import CoreML
import Foundation
import SFLLaVAKit
import Tokenizers

/// The Core ML bundle's three packages, driven in the call sequence the Python Core ML parity check
/// drives (the manifest's `call_sequence`): vision encoder once per clip, embeddings per text segment,
/// then the stateful decoder (`makeState()`, `prefill` calls of `prefill_chunk` rows, then `decode`
/// steps), greedy over the tokenizer's vocabulary. The state lives as long as the clip: a follow-up
/// feeds only its turn at the next position. Feature names come from the manifest.
public final class CoreMLEngine: VideoQAEngine {
    public let name = "coreml"
    public let note = "Core ML (MLModel.prediction) on this device; decode stops at EOS"
    public private(set) var loadSeconds = 0.0

    private let bundle: BundleFolder
    private let vision: MLModel
    private let embedding: MLModel
    private let prefill: MLModel
    private let decode: MLModel
    private let tokenizer: Tokenizer
    private let io: IO
    private let vocabulary: Int
    private var stopRequested = false
    private let lock = NSLock()
    public private(set) var conversation: Conversation
    /// The KV state of the current clip's conversation, the next free position and the last logits.
    private var state: MLState?
    private var position = 0
    private var logits: MLMultiArray?

    /// Input and output names of the three methods, from the manifest.
    struct IO {
        let image: String, visualRows: String, ids: String, embeddings: String
        let embeds: String, position: String, logits: String

        init(_ m: Manifest) throws {
            func name(_ spec: TensorSpec?, _ what: String) throws -> String {
                guard let n = spec?.name else { throw KitError("manifest: \(what) has no Core ML feature name") }
                return n
            }
            let vis = m.methods["vision_encoder"]
            let emb = m.methods["token_embedding"]
            let dec = m.methods["text_decoder"]
            image = try name(vis?.inputs.first, "vision_encoder input")
            visualRows = try name(vis?.output, "vision_encoder output")
            ids = try name(emb?.inputs.first, "token_embedding input")
            embeddings = try name(emb?.output, "token_embedding output")
            embeds = try name(dec?.inputs.first, "text_decoder input 0")
            position = try name(dec?.inputs.dropFirst().first, "text_decoder input 1")
            logits = try name(dec?.output, "text_decoder output")
        }
    }

    /// Compiles each package once (cached next to the app's other caches) and loads it.
    public init(bundle: BundleFolder, cache: URL) async throws {
        guard let coreml = bundle.manifest.coreml else {
            throw KitError("\(bundle.name) is a \(bundle.manifest.backend) bundle, not a Core ML one")
        }
        self.bundle = bundle
        conversation = Conversation(manifest: bundle.manifest)
        io = try IO(bundle.manifest)
        let t0 = ProcessInfo.processInfo.systemUptime
        func compiled(_ method: String) async throws -> URL {
            guard let pkg = coreml.packages[method] else { throw KitError("manifest: no package for \(method)") }
            return try await Self.compiledModel(bundle.url.appendingPathComponent(pkg), cache: cache, bundle: bundle.name)
        }
        let config = MLModelConfiguration()
        config.computeUnits = .all
        vision = try await MLModel.load(contentsOf: try await compiled("vision_encoder"), configuration: config)
        embedding = try await MLModel.load(contentsOf: try await compiled("token_embedding"), configuration: config)
        let decoderURL = try await compiled("text_decoder")
        let prefillConfig = MLModelConfiguration()
        prefillConfig.functionName = "prefill"
        let decodeConfig = MLModelConfiguration()
        decodeConfig.functionName = "decode"
        prefill = try await MLModel.load(contentsOf: decoderURL, configuration: prefillConfig)
        decode = try await MLModel.load(contentsOf: decoderURL, configuration: decodeConfig)
        do {
            tokenizer = try await AutoTokenizer.from(modelFolder: bundle.url, strict: false)
        } catch {
            throw KitError("\(bundle.name): the tokenizer cannot be read (\(error.localizedDescription))")
        }
        vocabulary = tokenizer.vocabularySize()
        loadSeconds = ProcessInfo.processInfo.systemUptime - t0
    }

    /// `MLModel.compileModel(at:)` once per package version; the .mlmodelc is kept in `cache`.
    static func compiledModel(_ package: URL, cache: URL, bundle: String) async throws -> URL {
        let fm = FileManager.default
        let attrs = try fm.attributesOfItem(atPath: package.appendingPathComponent("Manifest.json").path)
        let stamp = Int((attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
        let dest = cache.appendingPathComponent("\(bundle)-\(stamp)").appendingPathComponent(
            package.deletingPathExtension().lastPathComponent + ".mlmodelc")
        if fm.fileExists(atPath: dest.path) { return dest }
        let tmp = try await MLModel.compileModel(at: package)
        try fm.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fm.moveItem(at: tmp, to: dest)
        return dest
    }

    /// Encodes the clip and prefills the text before the video and the visual rows into a new KV
    /// state: once per clip; questions continue from `position`.
    public func loadClip(frames: [[UInt8]]) throws -> ClipTiming {
        let m = bundle.manifest
        let v = m.video
        let packed = try TallImage.pack(frames, width: v.frameWidth, height: v.frameHeight)
        let size = m.packedImageSize
        let image = MLMultiArray(MLShapedArray<Float16>(scalars: packed.map { Float16($0) }, shape: [1, 3, size.height, size.width]))
        let packedAt = ProcessInfo.processInfo.systemUptime
        let visual = try predict(vision, [io.image: image], output: io.visualRows)
        let visionDone = ProcessInfo.processInfo.systemUptime
        var before = tokenizer.encode(text: m.prompt.textBeforeVideo, addSpecialTokens: false)
        if let bos = m.prompt.bosId { before.insert(bos, at: 0) }
        let newState = decode.makeState()
        var pos = 0
        for segment in try embed(before) + [visual] {
            logits = try feed(segment, from: pos, state: newState)
            pos += segment.shape[1].intValue
        }
        state = newState
        position = pos
        _ = conversation.clipInputs(exactPosition: pos)
        return ClipTiming(packed: packedAt, visionDone: visionDone, ready: ProcessInfo.processInfo.systemUptime)
    }

    public func ask(_ question: String, start: Double, framesDecoded: Double, clip: ClipTiming?,
                    onText: @escaping (String) -> Void) throws -> EngineAnswer {
        setStop(false)
        let turn = try conversation.planTurn(question)
        guard let state else { throw KitError("load a clip first") }
        let m = bundle.manifest
        let ids = tokenizer.encode(text: turn.text, addSpecialTokens: false)
        let turnStart = position
        for segment in try embed(ids) {
            logits = try feed(segment, from: position, state: state)
            position += segment.shape[1].intValue
        }
        let vocabLimit = min(vocabulary, logits?.count ?? 0)
        var detok = IncrementalDetokenizer { [tokenizer] ids in tokenizer.decode(tokens: ids, skipSpecialTokens: false) }
        let stream = TokenStream(eosPieces: m.prompt.eosPieces, maxNewTokens: m.context.maxNewTokens, onUpdate: onText)
        var firstToken: Double?
        let eos = Set(m.prompt.eosIds)
        // As the stock runner: an EOS is never fed, nor a last token that reaches the budget.
        while let l = logits, !isStopRequested(), position < m.context.maxContextLen {
            let next = DecoderSchedule.argmax(Self.floats(l), limit: vocabLimit)
            if firstToken == nil { firstToken = ProcessInfo.processInfo.systemUptime }
            let piece = eos.contains(next) ? (m.prompt.eosPieces.first ?? "") : detok.push(next)
            if !stream.accept(piece) { break }
            let row = try embed([next])[0]
            logits = try feed(row, from: position, state: state)
            position += 1
        }
        stream.accept(detok.flush())
        let text = stream.finish()
        conversation.finishTurn(turn, exactPosition: position, emittedTokens: stream.tokens)
        let end = ProcessInfo.processInfo.systemUptime
        let timing = AnswerTiming(start: start, framesDecoded: framesDecoded, packed: clip?.packed ?? start,
                                  visionDone: clip?.visionDone, firstToken: firstToken ?? end, end: end,
                                  promptTokens: turn.isFollowUp ? ids.count : turnStart + ids.count,
                                  generatedTokens: stream.tokens, loadSeconds: loadSeconds)
        return EngineAnswer(text: text, stopReason: stream.stopReason, timing: timing)
    }

    public func stop() {
        setStop(true)
    }

    private func setStop(_ value: Bool) {
        lock.lock()
        stopRequested = value
        lock.unlock()
    }

    private func isStopRequested() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopRequested
    }

    private func predict(_ model: MLModel, _ inputs: [String: MLMultiArray], output: String, state: MLState? = nil) throws -> MLMultiArray {
        let provider = try MLDictionaryFeatureProvider(dictionary: inputs.mapValues { MLFeatureValue(multiArray: $0) })
        let out = try state.map { try model.prediction(from: provider, using: $0) } ?? model.prediction(from: provider)
        guard let value = out.featureValue(for: output)?.multiArrayValue else {
            throw KitError("Core ML output \(output) is missing")
        }
        return value
    }

    /// Embeddings of `ids` in pieces of at most `max_seq_len` ids (the method's range dimension).
    private func embed(_ ids: [Int]) throws -> [MLMultiArray] {
        let n = bundle.manifest.context.maxSeqLen
        return try stride(from: 0, to: ids.count, by: n).map { i in
            let part = Array(ids[i..<min(i + n, ids.count)])
            let arr = MLMultiArray(MLShapedArray<Int32>(scalars: part.map { Int32($0) }, shape: [1, part.count]))
            return try predict(embedding, [io.ids: arr], output: io.embeddings)
        }
    }

    /// Feeds `rows` ([1, S, hidden] float16) through the decoder schedule; returns the last logits.
    private func feed(_ rows: MLMultiArray, from position: Int, state: MLState) throws -> MLMultiArray {
        let count = rows.shape[1].intValue
        let hidden = rows.shape[2].intValue
        // Outputs may be strided: MLShapedArray gives the rows contiguous, in row-major order.
        let src = MLShapedArray<Float16>(rows).scalars
        var last: MLMultiArray?
        for call in DecoderSchedule.calls(rows: count, position: position, prefillChunk: bundle.manifest.context.prefillChunk) {
            let slice = Array(src[(call.start * hidden)..<((call.start + call.rows) * hidden)])
            let x = MLMultiArray(MLShapedArray<Float16>(scalars: slice, shape: [1, call.rows, hidden]))
            let pos = MLMultiArray(MLShapedArray<Int32>(scalars: [Int32(call.position)], shape: [1]))
            let model = call.function == "prefill" ? prefill : decode
            last = try predict(model, [io.embeds: x, io.position: pos], output: io.logits, state: state)
        }
        guard let logits = last else { throw KitError("nothing to feed the decoder") }
        return logits
    }

    static func floats(_ a: MLMultiArray) -> [Float] {
        switch a.dataType {
        case .float16: return MLShapedArray<Float16>(a).scalars.map { Float($0) }
        case .float32: return MLShapedArray<Float>(a).scalars
        default: return (0..<a.count).map { a[$0].floatValue }
        }
    }
}

private extension Tokenizer {
    func vocabularySize() -> Int {
        // The largest id the tokenizer can produce, plus one: greedy never picks a logit past it.
        var n = 0
        while convertIdToToken(n) != nil { n += 1 }
        return n
    }
}
