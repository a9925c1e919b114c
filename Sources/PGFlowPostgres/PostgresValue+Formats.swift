import CivilCalendar
import Foundation

/// Fast `timestamptz` text conversion (no DateFormatter: it costs microseconds per call).
enum PostgresTimestamp {
    /// `YYYY-MM-DD HH:MM:SS.ffffff+00`
    static func format(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var seconds = Int64(t.rounded(.down))
        var micros = Int64(((t - Double(seconds)) * 1_000_000).rounded())
        if micros >= 1_000_000 { seconds += 1; micros -= 1_000_000 }
        let days = floorDiv(seconds, 86_400)
        let secOfDay = seconds - days * 86_400
        let (y, m, d) = civil(fromDays: days)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2)) \(pad(secOfDay / 3600, 2)):\(pad(secOfDay / 60 % 60, 2)):\(pad(secOfDay % 60, 2)).\(pad(micros, 6))+00"
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
    /// `{"a","b \"c\"",NULL}`: every element quoted, `"` and `\` escaped; nil is NULL.
    static func format(_ elements: [String?]) -> String {
        var out = "{"
        for (n, element) in elements.enumerated() {
            if n > 0 { out += "," }
            guard let e = element else {
                out += "NULL"
                continue
            }
            out += "\""
            for ch in e.unicodeScalars {
                if ch == "\"" || ch == "\\" { out += "\\" }
                out.unicodeScalars.append(ch)
            }
            out += "\""
        }
        return out + "}"
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
