// The CLI reads through views and functions only: no Swift file of the CLI (nor the listings it calls)
// selects from a pgflow table, so the schema's tables can change behind a stable read API.
import Foundation
import PGFlowTestSupport
import Testing

@Suite struct NoTableReadsTests {
    @Test func theCLIReadsNoTable() throws {
        let root = TestDatabase.repositoryRoot
        let migrations = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("sql/migrations").path)
        var tables: Set<String> = []
        for file in migrations where file.hasSuffix(".sql") {
            let text = try String(contentsOf: root.appendingPathComponent("sql/migrations/\(file)"), encoding: .utf8)
            let regex = try NSRegularExpression(pattern: #"CREATE TABLE pgflow\.([a-z_]+)"#)
            for m in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                tables.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        #expect(tables.contains("flow_runs") && tables.contains("deployment_schedules"))
        let files = ["Sources/pgflow", "Sources/PGFlowCLIKit", "Sources/PGFlowDeploy"].flatMap { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(dir).path)) ?? []).map { "\(dir)/\($0)" }
        } + ["Sources/PGFlowClient/PGFlowClient+Listings.swift", "Sources/PGFlowClient/PGFlowClient+CLI.swift"]
        #expect(files.count > 10)
        for file in files where file.hasSuffix(".swift") {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            for table in tables {
                #expect(text.range(of: #"(FROM|JOIN)\s+pgflow\.\#(table)\b"#, options: .regularExpression) == nil, "\(file) reads pgflow.\(table)")
            }
        }
    }
}
