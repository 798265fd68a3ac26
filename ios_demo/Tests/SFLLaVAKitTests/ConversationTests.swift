import Foundation
import XCTest

@testable import SFLLaVAKit

/// The same checks as the Kotlin core's ConversationTest, against the golden conversation.
final class ConversationTests: XCTestCase {
    func testTwoTurnPlanFollowsTheGoldenConversation() throws {
        for dir in try Bundles.folders() {
            let m = try Bundles.manifest(dir)
            let g = try Bundles.golden(dir).conversation
            var c = Conversation(manifest: m)
            XCTAssertEqual(c.clipInputs(), Array(try Bundles.golden(dir).prompt.runnerInputs.dropLast()))
            XCTAssertGreaterThanOrEqual(c.position, g.positions["clip"] ?? .max, "the clip's bound is below its real size")
            let first = try c.planTurn(g.questions[0])
            XCTAssertFalse(first.isFollowUp)
            XCTAssertEqual(first.text, m.prompt.textAfterVideo.replacingOccurrences(of: "{question}", with: g.questions[0]))
            c.finishTurn(first, exactPosition: g.positions["turn1"], emittedTokens: g.turn1Tokens.count)
            let second = try c.planTurn(g.questions[1])
            XCTAssertTrue(second.isFollowUp)
            XCTAssertEqual(second.text, g.textNextTurn)
            XCTAssertGreaterThanOrEqual(second.textTokenBound, g.idsNextTurn.count)
        }
    }

    func testAFollowUpThatWouldOverflowIsRefusedAndStartingOverRecovers() throws {
        let dir = try Bundles.folders()[0]
        let m = try Bundles.manifest(dir)
        let g = try Bundles.golden(dir).conversation
        // The first answer ends exactly where the follow-up and a whole answer still fit, then one later.
        let edge = m.context.maxContextLen - Conversation.tokenBound(g.textNextTurn) - m.context.maxNewTokens
        for (end, fits) in [(edge, true), (edge + 1, false)] {
            var c = Conversation(manifest: m)
            _ = c.clipInputs()
            c.finishTurn(try c.planTurn(g.questions[0]), exactPosition: end, emittedTokens: g.turn1Tokens.count)
            if fits {
                XCTAssertEqual(try c.planTurn(g.questions[1]).text, g.textNextTurn)
                continue
            }
            XCTAssertThrowsError(try c.planTurn(g.questions[1])) { e in
                XCTAssertTrue((e as? ContextFull)?.message.contains("start over") ?? false)
            }
            c.startOver()
            XCTAssertThrowsError(try c.planTurn(g.questions[0]))
            _ = c.clipInputs()
            XCTAssertFalse(try c.planTurn(g.questions[0]).isFollowUp)
        }
    }

    func testTokenBoundCountsBytes() {
        XCTAssertEqual(Conversation.tokenBound("héllo"), 7)
        XCTAssertThrowsError(try Conversation.cleanQuestion(" \n"))
        XCTAssertThrowsError(try Conversation.cleanQuestion("<image>?"))
    }
}
