// `pgflow work-queue …` and `pgflow concurrency-limit …`.
import ArgumentParser
import Foundation
import PGFlowCLIKit
import PGFlowClient
import PGFlowPostgres

struct WorkQueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "work-queue", abstract: "Work queues: create, list, preview, pause, limit.",
        subcommands: [Create.self, List.self, Inspect.self, Preview.self, Pause.self, Resume.self, SetLimit.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a work queue (or set all its settings).")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The queue's name.") var name: String
        @Option(parsing: .unconditional, help: "1 is served first.") var priority = 1
        @Option(name: .customLong("concurrency-limit"), parsing: .unconditional, help: "Most runs of this queue running at once.") var limit: Int?
        @Option(help: "A description.") var description: String?
        @Flag(help: "Create it paused.") var paused = false
        func run() throws {
            try reportingErrors {
                try PGFlowClient.createWorkQueue(name, priority: priority, concurrencyLimit: limit, paused: paused,
                                                 description: description, on: try database.connect())
                print("work queue \(name) ready")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List work queues with waiting and active runs.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.workQueues(json: output.json, on: try database.connect())) }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a work queue.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The queue's name.") var name: String
        func run() throws {
            try reportingErrors {
                try output.printRecord(try PGFlowListing.workQueues(name: name, json: output.json, on: try database.connect()),
                                       missing: "unknown work queue \(name): `pgflow work-queue ls` lists them")
            }
        }
    }

    struct Preview: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the runs waiting in a queue, in claim order.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The queue's name.") var name: String
        @Option(parsing: .unconditional, help: "Most runs shown.") var limit = 20
        func run() throws {
            try reportingErrors {
                let c = try database.connect()
                guard try PGFlowListing.workQueueExists(name, on: c) else { throw CLIError.notFound("unknown work queue \(name): `pgflow work-queue ls` lists them") }
                output.printListing(try PGFlowListing.queuePreview(name, limit: limit, json: output.json, on: c))
            }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a queue: agents claim nothing from it.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The queue's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setWorkQueuePaused(name, paused: true, on: try database.connect())
                print("paused work queue \(name)")
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused queue.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The queue's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.setWorkQueuePaused(name, paused: false, on: try database.connect())
                print("resumed work queue \(name)")
            }
        }
    }

    struct SetLimit: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-concurrency-limit", abstract: "Set (or with --none remove) a queue's concurrency limit.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The queue's name.") var name: String
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Most runs of this queue running at once.", valueName: "limit"))
        var limitArgument: [String] = []  // .allUnrecognized: a negative number reaches validation
        @Flag(help: "Remove the limit.") var none = false
        func run() throws {
            try reportingErrors {
                let limit = try limitArgument.isEmpty ? nil : wholeNumber(limitArgument, "limit")
                guard (limit == nil) == none else { throw CLIError.invalid("give a limit or --none") }
                try PGFlowClient.setWorkQueueConcurrencyLimit(name, limit: limit, on: try database.connect())
                print(limit.map { "work queue \(name): at most \($0) running" } ?? "work queue \(name): no limit")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a work queue that nothing uses, with its concurrency limit.",
            discussion: """
                Refused (exit 1) for `default`, and while a deployment or an online agent uses the queue or a run
                waits in it or runs from it. Finished runs stay in the history without a queue.
                """)
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The queue's name.") var name: String
        func run() throws {
            try reportingErrors {
                try PGFlowClient.deleteWorkQueue(name, on: try database.connect())
                print("deleted work queue \(name)")
            }
        }
    }
}

struct ConcurrencyLimitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "concurrency-limit", abstract: "Global and tag concurrency limits.",
        subcommands: [Create.self, List.self, Inspect.self, Reset.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create or change a limit: NAME (global) or tag:TAG.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "db, or tag:TAG") var name: String
        @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Slots.", valueName: "limit"))
        var limitArgument: [String] = []  // .allUnrecognized: a negative number reaches validation
        func run() throws {
            try reportingErrors {
                let limit = try wholeNumber(limitArgument, "limit")
                try PGFlowClient.createConcurrencyLimit(name, limit: limit, on: try database.connect())
                print("concurrency limit \(name): \(limit)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List limits with their slots in use.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        func run() throws {
            try reportingErrors { output.printListing(try PGFlowListing.concurrencyLimits(json: output.json, on: try database.connect())) }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a limit.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The limit's name.") var name: String
        func run() throws {
            try reportingErrors {
                try output.printRecord(try PGFlowListing.concurrencyLimits(name: name, json: output.json, on: try database.connect()),
                                       missing: "unknown concurrency limit \(name): `pgflow concurrency-limit ls` lists them")
            }
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release the slots a limit's leases hold (after their holders died).",
            discussion: """
                Releases the slots taken with pgflow.acquire_concurrency_slots. Slots held by runs in progress are
                kept: releasing them would let more runs in than the limit allows while those still run. A run's
                slots come back when it ends (the scheduler's reaper ends the runs of agents that died).
                """)
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The limit's name.") var name: String
        func run() throws {
            try reportingErrors {
                let n = try PGFlowClient.resetConcurrencyLimit(name, on: try database.connect())
                print("released \(n) slot(s) of \(name)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a global or tag limit.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The limit's name.") var name: String
        func run() throws {
            try reportingErrors {
                guard try PGFlowClient.deleteConcurrencyLimit(name, on: try database.connect()) else {
                    throw CLIError.notFound("unknown concurrency limit \(name): `pgflow concurrency-limit ls` lists them")
                }
                print("deleted concurrency limit \(name)")
            }
        }
    }
}

/// The one whole number a positional argument holds (negative ones included: SQL says why they are wrong).
private func wholeNumber(_ values: [String], _ what: String) throws -> Int {
    guard values.count == 1, let n = Int(values[0]) else {
        throw CLIError.invalid(values.isEmpty ? "give the \(what), a whole number" : "the \(what) must be one whole number, got \(values.joined(separator: " "))")
    }
    return n
}
