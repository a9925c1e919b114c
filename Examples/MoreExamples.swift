// A fan-out with map, a cached expensive step, and a subflow.
import Foundation
import PGFlow

/// Scores one item (pretend it is slow).
let scoreItem = FlowTask("score") { (item: Int) -> Int in
    try await Task.sleep(for: .milliseconds(10))
    return item * 7 % 13
}

/// Fans out over the items, eight at a time, and sums the scores.
let fanOut = Flow("fan-out") { (count: Int) -> Int in
    try await scoreItem.map(Array(0..<count), maxConcurrency: 8).reduce(0, +)
}

/// An expensive step cached in PostgreSQL by its input for an hour, shared by every run and agent.
let expensiveModel = FlowTask("train", cache: CachePolicy.inputs.expiring(after: .seconds(3600))) { (size: Int) -> Double in
    try await Task.sleep(for: .milliseconds(500))
    return Double(size).squareRoot()
}

/// Runs the cached step twice: the second run's task run is Cached.
let cachedTwice = Flow("cached-step") { (size: Int) -> Double in
    try await expensiveModel(size)
}

/// A parent that runs the fan-out flow as a subflow (a child run linked to a task run of the parent).
let parentFlow = Flow("parent") { (count: Int) -> String in
    let total = try await fanOut(count)
    let model = try await expensiveModel(count)
    return "total \(total), model \(model)"
}
