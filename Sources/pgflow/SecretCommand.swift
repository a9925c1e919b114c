// `pgflow secret set|get|ls|delete|rotate-key|env`: values are sealed here (PGFlowSecrets, AES-GCM) with
// the key from PGFLOW_SECRET_KEY or PGFLOW_SECRET_KEY_FILE; the database receives names and ciphertext.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient
import PGFlowPostgres
import PGFlowSecrets

struct SecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "Secrets, encrypted before they reach the database.",
        discussion: "The key: PGFLOW_SECRET_KEY (base64 of 32 bytes, `openssl rand -base64 32`) or PGFLOW_SECRET_KEY_FILE.",
        subcommands: [Set.self, Get.self, List.self, Delete.self, RotateKey.self, Env.self])

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a secret; its value is read from stdin (never from arguments).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The secret's name (lower-case letters, digits, _ . -).") var name: String
        func run() throws {
            try secretErrors {
                let key = try SecretKey.fromEnvironment()
                let value = readStdin()
                guard !value.isEmpty else { throw CLIError.invalid("no value on stdin: `printf %s VALUE | pgflow secret set \(name)`") }
                try SecretStore(key: key).set(name, value: value, on: try database.connect())
                print("set \(name) (key \(key.id))")
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a secret's value.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The secret's name.") var name: String
        func run() throws {
            try secretErrors { print(try SecretStore(key: try SecretKey.fromEnvironment()).get(name, on: try database.connect())) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List secret names and key ids (no values).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.secrets(json: output.json, on: try database.connect())) }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a secret.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The secret's name.") var name: String
        func run() throws {
            try reportingErrors {
                guard try PGFlowClient.deleteSecret(name, on: try database.connect()) else { throw CLIError.notFound("unknown secret \(name)") }
                print("deleted \(name)")
            }
        }
    }

    struct RotateKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract: "Re-encrypt every secret of the current key (from the environment) with a new key, all at once.")
        @OptionGroup var database: DatabaseOptions
        @Option(name: .customLong("new-key-file"), help: "A file holding the new key (base64).") var newKeyFile: String
        @Flag(help: "Write a new random key to --new-key-file first (refused when the file exists).") var generate = false
        func run() throws {
            try secretErrors {
                let old = try SecretKey.fromEnvironment()
                if generate {
                    guard !FileManager.default.fileExists(atPath: newKeyFile) else {
                        throw CLIError.invalid("\(newKeyFile) exists: --generate writes a new key file and never overwrites one")
                    }
                    guard FileManager.default.createFile(atPath: newKeyFile, contents: Data((SecretKey.generate().base64 + "\n").utf8),
                                                         attributes: [.posixPermissions: 0o600]) else {
                        throw CLIError(description: "cannot write \(newKeyFile)", code: 1)
                    }
                }
                let new = try SecretKey(file: newKeyFile)
                let n = try SecretStore(key: old).rotate(to: new, on: try database.connect())
                print("re-encrypted \(n) secret\(n == 1 ? "" : "s") from key \(old.id) to key \(new.id); use the new key from now on")
            }
        }
    }

    struct Env: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the secrets a deployment's command gets as environment variables (replaces its mapping).",
            discussion: "pgflow secret env etl/daily API_KEY=api-key DB_PASSWORD=db-password   (no mappings: clears it)")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "flow/deployment") var deployment: String
        @Argument(help: "VARIABLE=secret-name, repeatable.") var mappings: [String] = []
        func run() throws {
            try reportingErrors {
                var env: [String: Any] = [:]
                for m in mappings {
                    guard let eq = m.firstIndex(of: "="), eq != m.startIndex else {
                        throw CLIError.invalid("bad mapping \"\(m)\": write VARIABLE=secret-name")
                    }
                    env[String(m[..<eq])] = ["secret": String(m[m.index(after: eq)...])]
                }
                let json = String(decoding: try JSONSerialization.data(withJSONObject: env, options: [.sortedKeys]), as: UTF8.self)
                let n = try PGFlowClient.setDeploymentSecretEnvironment(deployment, envJSON: json, on: try database.connect())
                print("\(deployment): \(n) secret environment variable\(n == 1 ? "" : "s")")
            }
        }
    }
}

/// `reportingErrors`, with secrets failures as one line too: a wrong key exits 1, an unknown secret 5,
/// a missing or bad key 6.
func secretErrors(_ body: () throws -> Void) throws {
    try reportingErrors {
        do {
            try body()
        } catch let error as SecretError {
            switch error {
            case .notFound: throw CLIError.notFound(error.description)
            case .noKey, .badKey, .invalid: throw CLIError.invalid(error.description)
            case .wrongKey, .corrupted: throw CLIError(description: error.description, code: 1)
            }
        }
    }
}
