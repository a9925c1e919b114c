// `pgflow variable set|get|ls|unset`: named JSON values ({{ pgflow.variables.NAME }} in parameters).
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient

struct VariableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variable", abstract: "Variables: named JSON values parameters can use.",
        subcommands: [Set.self, Get.self, List.self, Unset.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a variable (the value is parsed as JSON, else kept as text).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The variable's name.") var name: String
        @Argument(help: "Its value: JSON (42, true, {\"a\": 1}, \"text\") or plain text.") var value: String
        func run() throws {
            try reportingErrors {
                let json = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])) != nil ? value : try jsonString(value)
                try PGFlowClient.setVariable(name, valueJSON: json, on: try database.connect())
                print("set \(name)")
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a variable's value (text as is, other values as JSON).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The variable's name.") var name: String
        @Flag(help: "Print text values as JSON strings too.") var json = false
        func run() throws {
            try reportingErrors {
                guard let value = try PGFlowClient.variable(name, on: try database.connect()) else {
                    throw CLIError.notFound("variable \(name) is not set: `pgflow variable ls` lists them")
                }
                if !json, let text = (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: [.fragmentsAllowed])) as? String {
                    print(text)
                } else {
                    print(value)
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List variables.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.variables(json: output.json, on: try database.connect())) }
        }
    }

    struct Unset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a variable.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The variable's name.") var name: String
        func run() throws {
            try reportingErrors {
                guard try PGFlowClient.deleteVariable(name, on: try database.connect()) else {
                    throw CLIError.notFound("variable \(name) is not set")
                }
                print("unset \(name)")
            }
        }
    }
}
