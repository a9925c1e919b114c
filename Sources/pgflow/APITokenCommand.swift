// `pgflow api token create|ls|revoke`: API tokens. The database hashes them (SHA-256 in SQL), so the
// CLI needs no crypto and never stores a token; `create` prints it once.
import ArgumentParser
import Foundation
import PGFlowClient

struct APITokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, list and revoke API tokens.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token and print it (shown only this once).")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "A name for the token (who or what uses it).") var name: String
        @Option(help: "read (reads), run (also creates, cancels, retries runs) or admin (also configuration).") var scope: String
        func run() throws {
            try reportingErrors { print(try PGFlowClient.createAPIToken(name: name, scope: scope, on: try database.connect())) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List tokens (names and scopes; never the tokens).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.apiTokens(json: output.json, on: try database.connect())) }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: requests with it get 401 from then on.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The token's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.revokeAPIToken(name: name, on: try database.connect())
                print("token \(name) revoked")
            }
        }
    }
}
