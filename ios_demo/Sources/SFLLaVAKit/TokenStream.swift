import Foundation

public enum StopReason: String, Sendable {
    case running, eos, maxNewTokens = "max_new_tokens", finished
}

/// Assembles streamed pieces into the answer: bytes are held back until they complete a UTF-8
/// character, an EOS piece ends the answer and is not shown (the runner passes it on, even as the
/// first token), at most `maxNewTokens` pieces are taken, and `onUpdate` gets the text no more often
/// than every `batchSeconds` (`clock` is injectable for tests).
public final class TokenStream {
    private let eos: [String]
    private let maxNewTokens: Int
    private let batchSeconds: Double
    private let clock: () -> Double
    private let onUpdate: (String) -> Void
    private var pending: [UInt8] = []
    private var lastFlush: Double?
    private var flushedCount = 0

    public private(set) var answer = ""
    public private(set) var tokens = 0
    public private(set) var stopReason = StopReason.running
    public var stopped: Bool { stopReason != .running }

    public init(eosPieces: [String], maxNewTokens: Int, batchSeconds: Double = 0.05,
                clock: @escaping () -> Double = { ProcessInfo.processInfo.systemUptime },
                onUpdate: @escaping (String) -> Void = { _ in }) {
        eos = eosPieces.filter { !$0.isEmpty }
        self.maxNewTokens = maxNewTokens
        self.batchSeconds = batchSeconds
        self.clock = clock
        self.onUpdate = onUpdate
    }

    /// One piece as text. Returns false when the engine should stop the runner.
    @discardableResult
    public func accept(_ piece: String) -> Bool { accept(bytes: Array(piece.utf8)) }

    /// One piece as raw bytes. Returns false when the engine should stop the runner.
    @discardableResult
    public func accept(bytes piece: [UInt8]) -> Bool {
        if stopped { return false }
        tokens += 1
        let joined = pending + piece
        if let hit = eos.first(where: { joined.count >= $0.utf8.count && Array(joined.suffix($0.utf8.count)) == Array($0.utf8) }) {
            // Whatever came before the EOS piece in the same callback is still answer text.
            pending = []
            append(Array(joined.prefix(joined.count - hit.utf8.count)), final: true)
            return end(.eos)
        }
        pending = []
        append(joined, final: false)
        if tokens >= maxNewTokens { return end(.maxNewTokens) }
        flush(force: false)
        return true
    }

    /// The runner returned: emit what is held (an unfinished character becomes U+FFFD).
    @discardableResult
    public func finish() -> String {
        if !pending.isEmpty {
            let rest = pending
            pending = []
            append(rest, final: true)
        }
        if stopReason == .running { stopReason = .finished }
        flush(force: true)
        return answer
    }

    private func end(_ reason: StopReason) -> Bool {
        stopReason = reason
        flush(force: true)
        return false
    }

    private func append(_ all: [UInt8], final: Bool) {
        let cut = final ? all.count : Self.completePrefix(all)
        answer += String(decoding: all[0..<cut], as: UTF8.self)
        pending = Array(all[cut...])
    }

    private func flush(force: Bool) {
        guard answer.count != flushedCount else { return }
        let now = clock()
        if force || lastFlush == nil || now - (lastFlush ?? now) >= batchSeconds {
            lastFlush = now
            flushedCount = answer.count
            onUpdate(answer)
        }
    }

    /// Length of the longest prefix of `b` that does not end inside a UTF-8 sequence.
    public static func completePrefix(_ b: [UInt8]) -> Int {
        let n = b.count
        var back = 1
        while back <= min(3, n) {
            let x = b[n - back]
            if x & 0xC0 == 0x80 {
                back += 1
                continue
            }
            let need: Int
            if x & 0x80 == 0 { need = 1 } else if x & 0xE0 == 0xC0 { need = 2 } else if x & 0xF0 == 0xE0 { need = 3 } else if x & 0xF8 == 0xF0 { need = 4 } else { need = 1 }
            return need > back ? n - back : n
        }
        return n
    }
}

/// Turns token ids into streamed text with a whole-sequence decoder (a tokenizer's `decode`):
/// each step decodes every id so far and emits only the new complete text, holding back a trailing
/// U+FFFD that a later token may complete (byte-level BPE splits characters across tokens).
public struct IncrementalDetokenizer {
    private let decode: ([Int]) -> String
    private var ids: [Int] = []
    private var emitted = ""

    public init(decode: @escaping ([Int]) -> String) {
        self.decode = decode
    }

    /// The new text after `id`, possibly empty.
    public mutating func push(_ id: Int) -> String {
        ids.append(id)
        let text = decode(ids)
        guard !text.hasSuffix("\u{FFFD}"), text.hasPrefix(emitted) else { return "" }
        let piece = String(text.dropFirst(emitted.count))
        emitted = text
        return piece
    }

    /// What is still held back (a character that never completed).
    public mutating func flush() -> String {
        let text = decode(ids)
        guard text.hasPrefix(emitted) else { return "" }
        let piece = String(text.dropFirst(emitted.count))
        emitted = text
        return piece
    }
}
