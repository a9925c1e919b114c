// ZoneClock: the only place that maps between real instants and wall-clock time in a time zone.
//
// A wall time can exist once (the normal case), twice (in a fall-back overlap, e.g. 02:30 on
// 2026-10-25 in Europe/Berlin) or not at all (in a spring-forward gap, e.g. 02:30 on 2026-03-29).
// `resolve` reports which, using only `TimeZone.secondsFromGMT(for:)`, which is cheap (~0.1 µs).
// Offsets are sampled a day either side of the wall time, so this is exact as long as a zone does
// not change its offset twice within two days, which no zone in the tz database does.

import Foundation

/// How a wall time maps to real instants (all values are whole seconds since 1970).
enum WallResolution: Equatable {
    /// The wall time occurs exactly once.
    case unique(Int)
    /// The wall time occurs twice (fall-back overlap); `first < second`.
    case overlap(first: Int, second: Int)
    /// The wall time does not exist (spring-forward gap); `gapEnd` is the first instant after the gap.
    case gap(gapEnd: Int)

    /// The first occurrence, or the first instant after the gap for a wall time that does not exist.
    var earliest: Int {
        switch self {
        case .unique(let instant): return instant
        case .overlap(let first, _): return first
        case .gap(let gapEnd): return gapEnd
        }
    }
}

/// Converts between instants and wall seconds in one time zone.
struct ZoneClock {
    let timeZone: TimeZone

    /// UTC offset in seconds in effect at `instant`.
    func offset(at instant: Int) -> Int {
        timeZone.secondsFromGMT(for: dateFromEpoch(instant))
    }

    /// Wall seconds shown by a clock in this zone at `instant`.
    func wall(of instant: Int) -> Int { instant + offset(at: instant) }

    /// A wall position at or before the wall time of every instant later than `instant`: the wall
    /// time of `instant` under the smallest offset in force in the following hours. Searching wall
    /// times from here finds the second occurrences of a fall-back overlap that starts soon.
    func searchStart(after instant: Int) -> Int {
        instant + min(offset(at: instant), offset(at: instant + 6 * 3600))
    }

    /// The first occurrence of `wall`, or the first instant after the gap when it does not exist.
    func earliestInstant(atWall wall: Int) -> Int { resolve(wall: wall).earliest }

    /// Every instant whose wall time is `wall`, and where the gap ends if there is none.
    func resolve(wall: Int) -> WallResolution {
        let before = offset(at: wall - Civil.secondsPerDay)
        let after = offset(at: wall + Civil.secondsPerDay)
        var offsets = before == after ? [before] : [before, after]
        var instants = validInstants(wall: wall, offsets: offsets)
        if instants.isEmpty && before == after {
            // Two changes within two days; look at every hour of the window instead.
            offsets = Array(Set(stride(from: -24, through: 24, by: 1).map { offset(at: wall + $0 * 3600) }))
            instants = validInstants(wall: wall, offsets: offsets)
        }
        switch instants.count {
        case 0:
            return .gap(gapEnd: firstInstant(from: wall - offsets.max()!, to: wall - offsets.min()!))
        case 1:
            return .unique(instants[0])
        default:
            return .overlap(first: instants[0], second: instants[instants.count - 1])
        }
    }

    /// Instants `wall - o` for which `o` really is the offset in force, ascending, deduplicated.
    private func validInstants(wall: Int, offsets: [Int]) -> [Int] {
        Array(Set(offsets.compactMap { o in offset(at: wall - o) == o ? wall - o : nil })).sorted()
    }

    /// The first instant in `(low, high]` whose offset differs from the offset at `low`: the end
    /// of a gap that lies between those instants. Binary search to the second.
    private func firstInstant(from low: Int, to high: Int) -> Int {
        let offsetBefore = offset(at: low)
        var low = low
        var high = high
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(at: middle) == offsetBefore { low = middle } else { high = middle }
        }
        return high
    }
}
