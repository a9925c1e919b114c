// `pgflow block create|ls|inspect|delete|types|type-create`: typed configuration documents, checked
// against their type's JSON schema by PostgreSQL on every write.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowDeploy
import PGFlowClient
import PGFlowPostgres

struct BlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "block", abstract: "Blocks: typed configuration (slack-webhook/alerts).",
        subcommands: [Create.self, List.self, Inspect.self, Delete.self, Types.self, TypeCreate.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace block TYPE/NAME from a YAML or JSON file.",
            discussion: "Secret fields hold references: `password: {secret: db-password}` (set it with `pgflow secret set`).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "TYPE/NAME, e.g. slack-webhook/alerts.") var block: String
        @Option(name: .shortAndLong, help: "The block's fields, YAML or JSON (- reads stdin).") var file: String
        func run() throws {
            try reportingErrors {
                let text: String
                if file == "-" {
                    text = readStdin()
                } else {
                    guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else {
                        throw CLIError.invalid("cannot read \(file)")
                    }
                    text = contents
                }
                let json: String?
                do { json = try DeploymentFile.mappingJSON(fromYAML: text) } catch { throw CLIError.invalid("\(file) is not YAML or JSON: \(error)") }
                guard let json else { throw CLIError.invalid("\(file) must hold a mapping of the block's fields") }
                let id = try PGFlowClient.saveBlock(block, dataJSON: json, on: try database.connect())
                print("saved \(block) (\(id.uuidString.lowercased()))")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List blocks.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(name: .customLong("type"), help: "Only blocks of this type.") var blockType: String?
        func run() throws {
            try reportingErrors {
                output.printListing(try PGFlowListing.blocks(type: blockType, json: output.json, on: try database.connect()))
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a block's fields as JSON (secret fields as references).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "TYPE/NAME") var block: String
        func run() throws {
            try reportingErrors { print(try PGFlowClient.block(block, on: try database.connect())) }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a block.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "TYPE/NAME") var block: String
        func run() throws {
            try reportingErrors {
                guard try PGFlowClient.deleteBlock(block, on: try database.connect()) else { throw CLIError.notFound("unknown block \(block)") }
                print("deleted \(block)")
            }
        }
    }

    struct Types: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List block types (--json shows their schemas).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.blockTypes(json: output.json, on: try database.connect())) }
        }
    }

    struct TypeCreate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "type-create", abstract: "Create or replace a block type from a JSON schema file.",
            discussion: "Supported keywords: type, enum, required, properties, additionalProperties, items, and secret: true.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The type's name, e.g. slack-webhook.") var name: String
        @Option(name: .customLong("schema"), help: "A JSON (or YAML) schema file.") var schemaFile: String
        @Option(help: "A description.") var description: String?
        func run() throws {
            try reportingErrors {
                guard let text = try? String(contentsOfFile: schemaFile, encoding: .utf8), let schema = try DeploymentFile.mappingJSON(fromYAML: text) else {
                    throw CLIError.invalid("cannot read a schema (a YAML or JSON mapping) from \(schemaFile)")
                }
                try PGFlowClient.createBlockType(name, schemaJSON: schema, description: description,
                                                 on: try database.connect())
                print("block type \(name) saved")
            }
        }
    }
}
