// Durations from the database never trap the agent.
import Foundation
import PGFlowAgent
import Testing

@Suite struct SafeDurationTests {
    @Test func oddSecondsBecomeNoLimitOrAreClamped() {
        #expect(safeDuration(seconds: nil) == nil)
        #expect(safeDuration(seconds: .nan) == nil)
        #expect(safeDuration(seconds: .infinity) == nil)
        #expect(safeDuration(seconds: -1) == nil)
        #expect(safeDuration(seconds: 0) == nil)
        #expect(safeDuration(seconds: 1e17) == .seconds(100 * 365 * 86_400))
        #expect(safeDuration(seconds: .greatestFiniteMagnitude) == .seconds(100 * 365 * 86_400))
        #expect(safeDuration(seconds: 1.5) == .milliseconds(1_500))
    }

    @Test func theFenceMustActBeforeTheReaper() {
        var c = AgentConfiguration(queues: ["default"])
        #expect(throws: Never.self) { try c.validate() }  // 5 + 20 + 5 + 5 < 60
        c.fenceTimeout = .seconds(45)
        #expect(throws: AgentError.self) { try c.validate() }
        c.heartbeatTimeout = .seconds(90)
        #expect(throws: Never.self) { try c.validate() }
    }
}
