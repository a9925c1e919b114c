import CivilCalendar
import Foundation

/// Fast `timestamptz` text conversion (no DateFormatter: it costs microseconds per call).
enum PostgresTimestamp {
    /// `YYYY-MM-DD HH:MM:SS.ffffff+00` (years 0 to 9999; others in the same shape with more digits).
    static func format(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var seconds = Int64(t.rounded(.down))
        var micros = Int64(((t - Double(seconds)) * 1_000_000).rounded())
        if micros >= 1_000_000 { seconds += 1; micros -= 1_000_000 }
        let days = floorDiv(seconds, 86_400)
        let secOfDay = seconds - days * 86_400
        let (y, m, d) = civil(fromDays: days)
        guard y >= 0, y <= 9999 else {
            return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2)) \(pad(secOfDay / 3600, 2)):\(pad(secOfDay / 60 % 60, 2)):\(pad(secOfDay % 60, 2)).\(pad(micros, 6))+00"
        }
        // digits written into a fixed buffer: string interpolation cost microseconds per timestamp
        return String(unsafeUninitializedCapacity: 29) { buffer in
            func put(_ value: Int64, _ width: Int, at offset: Int) {
                var v = value
                for i in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[i] = UInt8(48 + v % 10)
                    v /= 10
                }
            }
            put(y, 4, at: 0); buffer[4] = 45; put(m, 2, at: 5); buffer[7] = 45; put(d, 2, at: 8); buffer[10] = 32
            put(secOfDay / 3600, 2, at: 11); buffer[13] = 58; put(secOfDay / 60 % 60, 2, at: 14); buffer[16] = 58
            put(secOfDay % 60, 2, at: 17); buffer[19] = 46; put(micros, 6, at: 20); buffer[26] = 43; buffer[27] = 48; buffer[28] = 48
            return 29
        }
    }

    /// Parses `YYYY-MM-DD[ T]HH:MM:SS[.f…][±HH[:MM[:SS]]|Z]`, `infinity` and `-infinity`.
    static func parse(_ text: String) -> Date? {
        if text == "infinity" { return .distantFuture }
        if text == "-infinity" { return .distantPast }
        let b = Array(text.utf8)
        var i = 0
        func number(_ count: Int) -> Int64? {
            guard i + count <= b.count else { return nil }
            var v: Int64 = 0
            for k in i..<(i + count) {
                let c = b[k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            i += count
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let y = number(4), expect(45), let mo = number(2), expect(45), let d = number(2) else { return nil }
        guard i < b.count, b[i] == 32 || b[i] == 84 else { return nil }
        i += 1
        guard let h = number(2), expect(58), let mi = number(2), expect(58), let s = number(2) else { return nil }
        var fraction = 0.0
        if expect(46) {
            var scale = 0.1
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                fraction += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offset: Int64 = 0
        if i < b.count {
            if b[i] == 90 { i += 1 } else {
                guard b[i] == 43 || b[i] == 45 else { return nil }
                let sign: Int64 = b[i] == 45 ? -1 : 1
                i += 1
                guard let oh = number(2) else { return nil }
                var om: Int64 = 0, os: Int64 = 0
                if expect(58) { guard let v = number(2) else { return nil }; om = v }
                if expect(58) { guard let v = number(2) else { return nil }; os = v }
                offset = sign * (oh * 3600 + om * 60 + os)
            }
        }
        guard i == b.count, (1...12).contains(mo), (1...31).contains(d) else { return nil }
        let days = days(fromCivil: y, mo, d)
        let seconds = days * 86_400 + h * 3600 + mi * 60 + s - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    private static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : (a - b + 1) / b }

    private static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let (y, m, d) = CivilDay.date(Int(days))
        return (Int64(y), Int64(m), Int64(d))
    }

    private static func days(fromCivil y: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        Int64(CivilDay.number(year: Int(y), month: Int(m), day: Int(d)))
    }
}

/// One-dimensional `text[]` literals.
enum PostgresArray {
    /// `{"a","b \\"c\\"",NULL}`: every element quoted, `"` and `\\` escaped; nil is NULL. Built as
    /// UTF-8 bytes (both escaped characters are ASCII, so no multi-byte character is split).
    static func format(_ elements: [String?]) -> String {
        var capacity = 2
        for e in elements { capacity += (e?.utf8.count ?? 2) + 3 }
        var out: [UInt8] = []
        out.reserveCapacity(capacity + capacity / 8)
        out.append(UInt8(ascii: "{"))
        for (n, element) in elements.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            guard var e = element else {
                out.append(contentsOf: [78, 85, 76, 76])  // NULL
                continue
            }
            out.append(UInt8(ascii: "\""))
            e.withUTF8 { bytes in
                for b in bytes {
                    if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                    out.append(b)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses `{a,"b c",d}`; nil for NULL elements or malformed text.
    static func parse(_ text: String) -> [String]? {
        let s = Array(text.unicodeScalars)
        guard s.first == "{", s.last == "}" else { return nil }
        var out: [String] = []
        var i = 1
        let end = s.count - 1
        if i == end { return [] }
        while i < end {
            var element = String.UnicodeScalarView()
            if s[i] == "\"" {
                i += 1
                while i < end, s[i] != "\"" {
                    if s[i] == "\\" { i += 1 }
                    guard i < end else { return nil }
                    element.append(s[i])
                    i += 1
                }
                guard i < end else { return nil }
                i += 1
            } else {
                while i < end, s[i] != "," {
                    element.append(s[i])
                    i += 1
                }
                if String(element) == "NULL" { return nil }
            }
            out.append(String(element))
            if i < end {
                guard s[i] == "," else { return nil }
                i += 1
            }
        }
        return out
    }
}
