import Foundation
import Testing
@testable import PGFlowSchedule

@Test func smoke() throws {
    let c = try CronSchedule(parsing: "30 2 * * *")
    let tz = TimeZone(identifier: "Europe/Berlin")!
    var d = Date(timeIntervalSince1970: 1774735200 - 86400*2)
    for _ in 0..<4 { d = c.nextDate(after: d, in: tz)!; print(d) }
}
