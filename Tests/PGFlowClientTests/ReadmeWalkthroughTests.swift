// The README's psql walk-through, pasted into real psql on a fresh database.
import Foundation
import PGFlowPostgres
import PGFlowTestSupport
import Testing

@Suite struct ReadmeWalkthroughTests {
    @Test func theWalkthroughWorksWhenPasted() async throws {
        let readme = try TestDatabase.repositoryFile("README.md")
        let start = try #require(readme.range(of: "```sql\n"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let script = String(readme[start.upperBound..<end.lowerBound])
        #expect(script.contains("pgflow.claim_flow_runs"))
        try await TestDatabase.with { db in
            // psql runs to its end on a thread of its own (waiting for it must not hold a cooperative thread).
            let conninfo = db.conninfo
            let (status, printed) = try await TestDatabase.offPool { () throws -> (Int32, String) in
                let psql = Process()
                psql.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                psql.arguments = ["psql", conninfo, "-X", "-v", "ON_ERROR_STOP=1", "-f", "-"]
                let input = Pipe(), output = Pipe()
                psql.standardInput = input
                psql.standardOutput = output
                psql.standardError = output
                try psql.run()
                input.fileHandleForWriting.write(Data(script.utf8))
                try input.fileHandleForWriting.close()
                let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                psql.waitUntilExit()
                return (psql.terminationStatus, printed)
            }
            #expect(status == 0, "psql said:\n\(printed)")
            #expect(!printed.contains("ERROR"), "psql said:\n\(printed)")
            let c = try db.connect()
            let row = try #require(try c.query("SELECT state_name, result::text FROM pgflow.flow_run_history WHERE deployment = 'daily'").first)
            #expect(try row.decode(String.self, at: 0) == "Completed")
            #expect(try row.decode(String.self, at: 1) == #"{"rows": 42}"#)
        }
    }
}
