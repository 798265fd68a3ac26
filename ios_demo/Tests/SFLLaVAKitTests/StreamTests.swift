import Foundation
import XCTest

@testable import SFLLaVAKit

/// Golden-free logic: the token stream, the detokenizer, the Core ML decoder schedule, the samplers' edges.
final class StreamTests: XCTestCase {
    let eos = ["<|im_end|>", "</s>"]

    func testACharacterSplitAcrossPiecesIsHeldBack() {
        var updates: [String] = []
        let s = TokenStream(eosPieces: eos, maxNewTokens: 100, batchSeconds: 0, clock: { 0 }) { updates.append($0) }
        let euro = Array("€".utf8)
        XCTAssertTrue(s.accept(bytes: Array("a".utf8) + euro.prefix(1)))
        XCTAssertEqual(s.answer, "a")
        XCTAssertTrue(s.accept(bytes: Array(euro.suffix(2))))
        XCTAssertEqual(s.answer, "a€")
        XCTAssertEqual(updates, ["a", "a€"])
    }

    func testEosEndsTheAnswerEvenFirstAndIsNotShown() {
        let first = TokenStream(eosPieces: eos, maxNewTokens: 100)
        XCTAssertFalse(first.accept("<|im_end|>"))
        XCTAssertEqual(first.finish(), "")
        let later = TokenStream(eosPieces: eos, maxNewTokens: 100)
        XCTAssertTrue(later.accept("It"))
        XCTAssertFalse(later.accept(" moves.</s>"))
        XCTAssertEqual(later.finish(), "It moves.")
        XCTAssertEqual(later.stopReason, .eos)
    }

    func testBudgetAndBatching() {
        let s = TokenStream(eosPieces: eos, maxNewTokens: 2)
        XCTAssertTrue(s.accept("a"))
        XCTAssertFalse(s.accept("b"))
        XCTAssertEqual(s.stopReason, .maxNewTokens)
        var now = 0.0
        var updates: [String] = []
        let b = TokenStream(eosPieces: eos, maxNewTokens: 100, batchSeconds: 0.05, clock: { now }) { updates.append($0) }
        b.accept("a")
        now = 0.01
        b.accept("b")
        now = 0.06
        b.accept("c")
        XCTAssertEqual(updates, ["a", "abc"])
    }

    func testIncrementalDetokenizerHoldsAnUnfinishedCharacter() {
        let pieces: [Int: [UInt8]] = [1: Array("a".utf8), 2: [0xE2, 0x82], 3: [0xAC]]
        var d = IncrementalDetokenizer { ids in String(decoding: ids.flatMap { pieces[$0] ?? [] }, as: UTF8.self) }
        XCTAssertEqual(d.push(1), "a")
        XCTAssertEqual(d.push(2), "")
        XCTAssertEqual(d.push(3), "€")
    }

    func testDecoderScheduleAndGreedy() {
        let calls = DecoderSchedule.calls(rows: 70, position: 5, prefillChunk: 32)
        XCTAssertEqual(calls.map(\.function), ["prefill", "prefill"] + Array(repeating: "decode", count: 6))
        XCTAssertEqual(calls.map(\.position).prefix(3), [5, 37, 69])
        XCTAssertEqual(calls.reduce(0) { $0 + $1.rows }, 70)
        XCTAssertEqual(DecoderSchedule.argmax([0, 3, 3, 9], limit: 3), 1)
    }

    func testSamplerEdges() throws {
        XCTAssertEqual(try FrameSampler.sample(totalFrames: 6, numFrames: 4, rule: .segmentMidpoint), [0, 1, 3, 4])
        XCTAssertEqual(try FrameSampler.sample(totalFrames: 2, numFrames: 4, rule: .uniform), [0, 0, 1, 1])
        XCTAssertThrowsError(try FrameSampler.sample(totalFrames: 0, numFrames: 4, rule: .uniform))
    }
}
