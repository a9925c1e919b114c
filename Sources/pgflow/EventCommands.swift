// `pgflow event emit|ls`, `pgflow automation …`, `pgflow notification …`: the event layer
// (docs/events.md). Wiring only: each subcommand calls one PGFlowClient function or listing.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient
import PGFlowSecrets
import PGFlowPostgres

struct EventCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event", abstract: "Events: emit one, list or follow them.", subcommands: [Emit.self, List.self])

    struct Emit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Emit an event (names starting pgflow. are the engine's own).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The event's name, such as acme.file.arrived.") var event: String
        @Option(name: .customLong("resource-id"), help: "The resource's id (merged into --resource).") var resourceID: String?
        @Option(help: "The resource as a JSON object.") var resource: String = "{}"
        @Option(help: "The payload as a JSON object.") var payload: String = "{}"
        @Option(help: "Related resources as a JSON array.") var related: String = "[]"
        func run() throws {
            try reportingErrors {
                var resourceJSON = resource
                if let resourceID {
                    guard var object = (try? JSONSerialization.jsonObject(with: Data(resource.utf8))) as? [String: Any] else {
                        throw CLIError.invalid("--resource must be a JSON object, such as {\"kind\": \"file\"}")
                    }
                    object["id"] = resourceID
                    resourceJSON = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
                }
                let id = try PGFlowClient.emitEvent(event, resourceJSON: resourceJSON, payloadJSON: payload, relatedJSON: related,
                                                    on: try database.connect())
                print(id.uuidString.lowercased())
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List events, newest first, or follow new ones.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Only events whose name matches: pgflow.flow-run.*, acme.file.arrived.") var event: String?
        @Option(name: .customLong("resource-id"), help: "Only events about this resource (a flow run id, …).") var resourceID: String?
        @Option(help: "Only events since: 30m, 2h, 1d back, or a time (2026-12-01 06:00).") var since: String?
        @Option(help: "How many (1 to 1000).") var limit = 50
        @Flag(help: "Keep printing new events, oldest first, until interrupted.") var follow = false
        func run() async throws {
            try await reportingErrors {
                let c = try database.connect()
                let sinceDate = try since.map { try TimeArguments.since($0) }
                guard follow else {
                    return output.printListing(try PGFlowListing.events(pattern: event, resourceID: resourceID, since: sinceDate,
                                                                        limit: limit, json: output.json, on: c))
                }
                var after = try PGFlowClient.latestEventSeq(on: c)
                while !Task.isCancelled {
                    let rows = try PGFlowClient.events(pattern: event, resourceID: resourceID, since: sinceDate, limit: 1000,
                                                       afterSeq: after, on: c)
                    for row in rows {
                        after = max(after, row.seq)
                        if output.json {
                            print("{\"seq\":\(row.seq),\"id\":\"\(row.id.uuidString.lowercased())\",\"occurred\":\"\(ISO8601DateFormatter().string(from: row.occurred))\",\"event\":\(try jsonString(row.event)),\"resource\":\(row.resourceJSON),\"payload\":\(row.payloadJSON)}")
                        } else {
                            print("\(output.timestamps.format(row.occurred))  \(row.event)  \(row.resourceID ?? "-")  \(row.payloadJSON)")
                        }
                    }
                    fflush(nil)
                    if rows.count < 1000 { try await Task.sleep(for: .milliseconds(300)) }
                }
            }
        }
    }
}

struct AutomationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "automation", abstract: "Automations: triggers on events, and their actions.",
        subcommands: [List.self, Inspect.self, Create.self, Pause.self, Resume.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List automations.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.automations(json: output.json, on: try database.connect())) }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an automation and its latest firings.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The automation's name.") var name: String
        @Option(help: "How many firings to show.") var firings = 20
        func run() throws {
            try reportingErrors {
                let c = try database.connect()
                if output.json {
                    guard let json = try PGFlowClient.automationJSON(name: name, on: c) else {
                        throw CLIError.notFound("no automation \(name): `pgflow automation ls` lists them")
                    }
                    return print(json)
                }
                try output.printRecord(try PGFlowListing.automations(name: name, json: false, on: c),
                                       missing: "no automation \(name): `pgflow automation ls` lists them")
                print("")
                output.printListing(try PGFlowListing.automationFirings(name: name, limit: firings, json: false, on: c))
            }
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an automation from a JSON trigger and JSON actions (docs/events.md).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The automation's name.") var name: String
        @Option(help: "The trigger, such as {\"type\": \"flow-run-state\", \"states\": [\"Failed\"]}.") var trigger: String
        @Option(help: "The actions, such as [{\"type\": \"send-notification\", \"target\": \"ops\"}].") var actions: String
        @Option(help: "A description.") var description: String?
        @Flag(help: "Replace an automation of that name.") var replace = false
        func run() throws {
            try reportingErrors {
                try PGFlowClient.createAutomation(name: name, triggerJSON: trigger, actionsJSON: actions, description: description,
                                                  replace: replace, on: try database.connect())
                print("created automation \(name)")
            }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause an automation (its triggers are ignored until resumed).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The automation's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setAutomationPaused(name: name, paused: true, on: try database.connect())
                print("paused automation \(name)")
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused automation.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The automation's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setAutomationPaused(name: name, paused: false, on: try database.connect())
                print("resumed automation \(name)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an automation with its firings.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The automation's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.deleteAutomation(name: name, on: try database.connect())
                print("deleted automation \(name)")
            }
        }
    }
}

struct NotificationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notification", abstract: "Webhook notifications: targets, dead letters.",
        subcommands: [List.self, DeadLetters.self, Retry.self, Targets.self, SetTarget.self, DeleteTarget.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List deliveries, newest first.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "How many.") var limit = 50
        func run() throws {
            try reportingErrors {
                output.printListing(try PGFlowListing.notifications(deadOnly: false, limit: limit, json: output.json, on: try database.connect()))
            }
        }
    }

    struct DeadLetters: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "List deliveries that failed their last attempt.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "How many.") var limit = 50
        func run() throws {
            try reportingErrors {
                output.printListing(try PGFlowListing.notifications(deadOnly: true, limit: limit, json: output.json, on: try database.connect()))
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a dead letter again (its attempts start over).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The delivery's id (from dead-letters).") var id: Int64
        func run() throws {
            try reportingErrors {
                try PGFlowClient.retryNotification(id: id, on: try database.connect())
                print("notification \(id) will be sent again")
            }
        }
    }

    struct Targets: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "targets", abstract: "List notification targets.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.notificationTargets(json: output.json, on: try database.connect())) }
        }
    }

    struct SetTarget: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "target-set", abstract: "Create or replace a webhook target.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The target's name.") var name: String
        @Option(help: "The webhook URL (http:// or https://).") var url: String?
        @Option(name: .customLong("url-secret"), help: "The name of a secret holding the URL instead (a Slack webhook URL is a credential): pgflow secret set NAME.") var urlSecret: String?
        @Option(help: "Body format: json (event and message) or slack ({\"text\": message}).") var format = "json"
        @Option(name: .customLong("signing-key-secret"), help: "The name of a secret holding the HMAC-SHA256 key for X-PGFlow-Signature.") var signingKeySecret: String?
        @Option(name: .customLong("signing-key-file"), help: "A file holding the key: stored as the secret notification.<target>.signing-key, sealed with PGFLOW_SECRET_KEY.") var signingKeyFile: String?
        @Option(name: .customLong("max-attempts"), help: "Attempts before a delivery is a dead letter.") var maxAttempts = 5
        @Option(help: "Seconds before the first retry (doubling after each).") var backoff: Double = 10
        func run() throws {
            try reportingErrors {
                guard (url == nil) != (urlSecret == nil) else {
                    throw CLIError.invalid("give the target --url URL or --url-secret NAME (one of them)")
                }
                guard signingKeySecret == nil || signingKeyFile == nil else {
                    throw CLIError.invalid("give --signing-key-secret NAME or --signing-key-file FILE, not both")
                }
                let c = try database.connect()
                var keySecret = signingKeySecret
                if let signingKeyFile {
                    guard let text = try? String(contentsOfFile: signingKeyFile, encoding: .utf8) else {
                        throw CLIError.invalid("cannot read the signing key file \(signingKeyFile)")
                    }
                    let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
                    guard !value.isEmpty else { throw CLIError.invalid("the signing key file \(signingKeyFile) is empty") }
                    let secret = Self.keySecretName(name)
                    do {
                        try SecretStore(key: try SecretKey.fromEnvironment()).set(secret, value: value, on: c)
                    } catch let error as SecretError {
                        throw CLIError.invalid("cannot store the signing key as secret \(secret): \(error)")
                    }
                    print("stored the signing key as secret \(secret)")
                    keySecret = secret
                }
                try PGFlowClient.setNotificationTarget(name: name, url: url, urlSecret: urlSecret, format: format, signingKeySecret: keySecret,
                                                       maxAttempts: maxAttempts, backoffSeconds: backoff, on: c)
                print("set notification target \(name)")
            }
        }

        /// The secret a `--signing-key-file` key is stored as: `notification.<target>.signing-key`, the
        /// target's name lower-cased with characters a secret name cannot hold replaced by `-`.
        static func keySecretName(_ target: String) -> String {
            let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
            return "notification." + String(target.lowercased().map { allowed.contains($0) ? $0 : "-" }) + ".signing-key"
        }
    }

    struct DeleteTarget: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "target-delete", abstract: "Delete a target with its deliveries.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The target's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.deleteNotificationTarget(name: name, on: try database.connect())
                print("deleted notification target \(name)")
            }
        }
    }
}
