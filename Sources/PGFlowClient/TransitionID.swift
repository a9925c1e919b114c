import Foundation
import Synchronization

extension UUID {
    private static let prefix: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let counter = Atomic<UInt64>(0)

    /// A unique id for a transition: a random 64-bit prefix drawn once per process, then a counter
    /// (version 4 and variant bits set, so PostgreSQL sees an ordinary uuid). Foundation's `UUID()`
    /// opens and reads /dev/urandom on every call here, and even a getrandom call per id cost the
    /// SDK's hot path more than the rest of a transition's bookkeeping (and 3 % of a draining agent's
    /// CPU, perf, 2026-12-05); transition ids only need to be unique, which 58 random bits per process
    /// and a counter make them. Used by the SDK and the agent's StateBatcher.
    public static func transitionID() -> UUID {
        let n = counter.add(1, ordering: .relaxed).newValue
        var raw = (prefix.bigEndian, n.bigEndian)
        return withUnsafeMutableBytes(of: &raw) { bytes in
            bytes[6] = bytes[6] & 0x0F | 0x40  // version 4
            bytes[8] = bytes[8] & 0x3F | 0x80  // RFC 4122 variant (the counter's top bits: never reached)
            return UUID(uuid: bytes.load(as: uuid_t.self))
        }
    }
}
