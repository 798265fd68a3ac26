import Foundation

/// The Core ML decoder call sequence (the manifest's `call_sequence`, driven the same way by the
/// Python parity check): `prefill` calls of exactly `prefillChunk` rows while that many remain, then
/// `decode` calls of one row, the KV state carried between calls.
public enum DecoderSchedule {
    public struct Call: Equatable, Sendable {
        public let function: String
        public let start: Int
        public let rows: Int
        public let position: Int
    }

    /// The calls that feed `rows` rows starting at cache position `position`.
    public static func calls(rows: Int, position: Int, prefillChunk: Int?) -> [Call] {
        var out: [Call] = []
        var i = 0
        while i < rows {
            if let chunk = prefillChunk, chunk > 1, rows - i >= chunk {
                out.append(Call(function: "prefill", start: i, rows: chunk, position: position + i))
                i += chunk
            } else {
                out.append(Call(function: "decode", start: i, rows: 1, position: position + i))
                i += 1
            }
        }
        return out
    }

    /// Greedy choice among the first `limit` logits (the tokenizer's vocabulary), lowest id on ties.
    public static func argmax(_ logits: [Float], limit: Int) -> Int {
        let n = min(limit, logits.count)
        var best = 0
        for i in 1..<max(n, 1) where logits[i] > logits[best] {
            best = i
        }
        return best
    }
}
