// The seed-style pipeline: fetch → process → store, with a flaky call retried with backoff.
import Foundation
import PGFlow

/// A page of fake records from a flaky upstream.
struct Page: Codable, Sendable {
    var source: String
    var records: [Int]
}

/// The upstream fails two calls out of three; the retries absorb it.
let fetchPage = FlowTask(
    "fetch", retries: RetryPolicy(count: 5, delay: .exponential(base: 0.1, cap: 1), jitter: 0.2), timeout: .seconds(10)
) { (source: String) -> Page in
    if Int.random(in: 0..<3) != 0 { throw URLError(.timedOut) }
    runLogger().info("fetched \(source)")
    return Page(source: source, records: Array(1...10))
}

/// Keeps the even records, squared.
let processPage = FlowTask("process") { (page: Page) -> [Int] in
    page.records.filter { $0.isMultiple(of: 2) }.map { $0 * $0 }
}

/// "Stores" the rows (here: sums them) and reports how many.
let storeRows = FlowTask("store") { (rows: [Int]) -> Int in
    runLogger().info("stored \(rows.count) rows, total \(rows.reduce(0, +))")
    return rows.count
}

/// fetch → process → store.
let seedPipeline = Flow("seed-pipeline", version: "1", runName: "seed-{input}") { (source: String) -> Int in
    let page = try await fetchPage(source)
    let rows = try await processPage(page)
    return try await storeRows(rows)
}
