// `pgflow artifact create|ls|inspect`: artifacts of flow runs; a command deployment attaches its own
// through PGFLOW_FLOW_RUN_ID.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient
import PGFlowPostgres

struct ArtifactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "artifact", abstract: "Artifacts: markdown, tables, links, progress.",
        subcommands: [Create.self, Update.self, List.self, Inspect.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach an artifact to a flow run (by default the run in $PGFLOW_FLOW_RUN_ID, as in a command deployment).",
            discussion: """
                --markdown TEXT | --table JSON (an array of rows) | --link URL [--link-text TEXT] | --progress 0-100;
                a value of - reads it from stdin. With --key, the artifact becomes that key's next version.
                Prints the artifact's id.
                """)
        @OptionGroup var database: DatabaseOptions
        @Option(help: "Markdown text (- reads stdin).") var markdown: String?
        @Option(help: "A JSON array of rows (objects or arrays; - reads stdin).") var table: String?
        @Option(help: "A URL.") var link: String?
        @Option(name: .customLong("link-text"), help: "The link's text.") var linkText: String?
        @Option(help: "A progress value from 0 to 100.") var progress: Double?
        @Option(help: "A key (lower-case letters, digits, dashes): versions of one artifact share it.") var key: String?
        @Option(help: "A description.") var description: String?
        @Option(name: .customLong("flow-run"), help: "The flow run (default: $PGFLOW_FLOW_RUN_ID; none: an unattached artifact).")
        var flowRun: String?

        func run() throws {
            try reportingErrors {
                let given = [markdown != nil, table != nil, link != nil, progress != nil].filter { $0 }.count
                guard given == 1 else { throw CLIError(description: "give exactly one of --markdown, --table, --link, --progress", code: 64) }
                let type: ArtifactType
                let data: String
                if let markdown {
                    type = .markdown
                    data = try jsonString(markdown == "-" ? readStdin() : markdown)
                } else if let table {
                    type = .table
                    data = table == "-" ? readStdin() : table
                } else if let link {
                    type = .link
                    var object = ["url": link]
                    object["text"] = linkText
                    data = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
                } else {
                    type = .progress
                    data = String(progress ?? 0)
                }
                let runText = flowRun ?? ProcessInfo.processInfo.environment["PGFLOW_FLOW_RUN_ID"]
                let runID = try runText.flatMap { $0.isEmpty ? nil : $0 }.map(flowRunID)
                let id = try PGFlowClient.createArtifact(type: type, dataJSON: data, key: key, description: description,
                                                         flowRunID: runID, on: try database.connect())
                print(id.uuidString.lowercased())
            }
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a progress artifact's value (other artifacts get new versions instead).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The progress artifact's id (`artifact create --progress` printed it).") var id: String
        @Option(help: "A progress value from 0 to 100.") var progress: Double
        func run() throws {
            try reportingErrors {
                guard let artifactID = UUID(uuidString: id) else { throw CLIError.invalid("\"\(id)\" is not an artifact id") }
                try PGFlowClient.updateProgressArtifact(artifactID, progress: progress, on: try database.connect())
                print("\(id): \(progress)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List artifacts, newest first.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(name: .customLong("flow-run"), help: "Only this flow run's artifacts.") var flowRun: String?
        @Option(help: "Only this key (every version).") var key: String?
        @Flag(help: "Only the latest version of each key.") var latest = false
        @Option(help: "Most artifacts shown.") var limit = 50
        func run() throws {
            try reportingErrors {
                output.printListing(try PGFlowListing.artifacts(flowRun: try flowRun.map(flowRunID), key: key, latestOnly: latest, limit: limit,
                                                         json: output.json, on: try database.connect()))
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an artifact (by id), or every version of a key with its data.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "An artifact id or key.") var artifact: String
        func run() throws {
            try reportingErrors {
                let c = try database.connect()
                if let id = UUID(uuidString: artifact) {
                    return try output.printRecord(try PGFlowListing.artifact(id, json: output.json, on: c),
                                                  missing: "unknown artifact \(artifact): `pgflow artifact ls` lists them")
                }
                let versions = try PGFlowListing.artifacts(flowRun: nil, key: artifact, limit: 1000, json: true, on: c)
                guard let text = versions.first?["json"], text != "[]" else {
                    throw CLIError.notFound("no artifact has key \(artifact): `pgflow artifact ls` lists them")
                }
                print(text)
            }
        }
    }
}

/// Text as a JSON string literal.
func jsonString(_ text: String) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed]), as: UTF8.self)
}

/// All of stdin as text (one trailing newline removed).
func readStdin() -> String {
    var text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
    if text.hasSuffix("\n") { text.removeLast() }
    return text
}
