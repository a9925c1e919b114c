import Foundation

/// The future result of a submitted task run. The flow waits for every future before it ends.
public struct TaskFuture<Output: Sendable>: Sendable {
    let task: Task<Output, any Error>

    /// Waits for the output; throws the task's error.
    public var value: Output {
        get async throws { try await task.value }
    }

    /// Waits for the output (same as `value`).
    public func wait() async throws -> Output { try await task.value }

    /// Waits for the run to end and returns its output or error without throwing.
    public func result() async -> Result<Output, any Error> { await task.result }

    /// Cancels the task run (it ends Cancelled).
    public func cancel() { task.cancel() }
}

extension FlowTask {
    /// Starts a task run concurrently and returns its future (a plain concurrent call outside a flow).
    public func submit(_ input: Input) -> TaskFuture<Output> {
        let task = Task { try await self(input) }
        if let scope = FlowRunScope.current {
            scope.track(wait: { _ = await task.result }, cancel: { task.cancel() })
        }
        return TaskFuture(task: task)
    }

    /// Runs the task for every input concurrently, at most `maxConcurrency` at once (nil: all), and
    /// returns the outputs in input order; throws the first error after every run has ended.
    public func map<S: Sequence & Sendable>(_ inputs: S, maxConcurrency: Int? = nil) async throws -> [Output] where S.Element == Input {
        let items = Array(inputs)
        let limit = max(1, maxConcurrency ?? items.count)
        var outputs = [Output?](repeating: nil, count: items.count)
        var firstError: (any Error)?
        await withTaskGroup(of: (Int, Result<Output, any Error>).self) { group in
            var next = 0
            func add() {
                let n = next
                let input = items[n]
                group.addTask {
                    do { return (n, .success(try await self(input))) } catch { return (n, .failure(error)) }
                }
                next += 1
            }
            while next < min(limit, items.count) { add() }
            for await (n, result) in group {
                switch result {
                case .success(let output): outputs[n] = output
                case .failure(let error): firstError = firstError ?? error
                }
                if next < items.count { add() }
            }
        }
        if let firstError { throw firstError }
        return outputs.map { $0! }
    }
}

/// Waits for every future; returns their outputs in order, throwing the first error.
public func wait<Output>(_ futures: [TaskFuture<Output>]) async throws -> [Output] {
    var outputs: [Output] = []
    outputs.reserveCapacity(futures.count)
    for future in futures { outputs.append(try await future.value) }
    return outputs
}

/// The futures' results in the order they finish.
public func asCompleted<Output>(_ futures: [TaskFuture<Output>]) -> AsyncStream<Result<Output, any Error>> {
    AsyncStream { continuation in
        let task = Task {
            await withTaskGroup(of: Result<Output, any Error>.self) { group in
                for future in futures { group.addTask { await future.result() } }
                for await result in group { continuation.yield(result) }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
    }
}
