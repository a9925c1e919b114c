// Pure tests of the text formats (no database).
import Foundation
import Testing
@testable import PGFlowPostgres

@Suite struct ValueFormatTests {
    @Test func timestampRoundTripsWithMicroseconds() throws {
        let date = Date(timeIntervalSince1970: 1_795_243_033.123456)
        #expect(PostgresTimestamp.format(date) == "2026-11-21 06:37:13.123456+00")
        let parsed = try #require(PostgresTimestamp.parse("2026-11-21 06:37:13.123456+00"))
        #expect(abs(parsed.timeIntervalSince1970 - 1_795_243_033.123456) < 1e-6)
    }

    @Test func timestampParsesOffsetsAndSpecials() throws {
        let a = try #require(PostgresTimestamp.parse("2026-11-21 08:37:13+02"))
        let b = try #require(PostgresTimestamp.parse("2026-11-21T01:07:13-05:30"))
        #expect(a.timeIntervalSince1970 == 1_795_243_033)
        #expect(b.timeIntervalSince1970 == 1_795_243_033)
        #expect(PostgresTimestamp.parse("2024-02-29 00:00:00+00")?.timeIntervalSince1970 == 1_709_164_800)
        #expect(PostgresTimestamp.parse("1969-12-31 23:59:59.5+00")?.timeIntervalSince1970 == -0.5)
        #expect(PostgresTimestamp.parse("infinity") == .distantFuture)
        #expect(PostgresTimestamp.parse("2026-13-01 00:00:00+00") == nil)
        #expect(PostgresTimestamp.parse("yesterday") == nil)
    }

    @Test func timestampFormatsBeforeTheEpoch() {
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31 23:59:59.500000+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29 00:00:00.000000+00")
    }

    @Test func uuidsFormatLowerCaseAndParseEitherCase() throws {
        let id = try #require(UUID(uuidString: "0A1B2C3D-4E5F-4a6b-8c7d-9E0F1A2B3C4D"))
        #expect(id.postgresText == "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
        #expect(try UUID(postgresText: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d") == id)
        #expect(try UUID(postgresText: "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D") == id)
        for _ in 0..<100 {
            let random = UUID()
            #expect(try UUID(postgresText: random.postgresText!) == random)
            #expect(random.postgresText == random.uuidString.lowercased())
        }
        #expect(throws: PostgresError.self) { try UUID(postgresText: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4g") }
        #expect(throws: PostgresError.self) { try UUID(postgresText: "0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d") }
    }

    @Test func textArraysEscapeMultiByteText() {
        let values: [String?] = ["é\\\"ü", "日本", "", nil, "a,b c"]
        #expect(PostgresArray.format(values) == #"{"é\\\"ü","日本","",NULL,"a,b c"}"#)
        #expect(PostgresArray.parse(PostgresArray.format(["é\\\"ü", "日本", ""])) == ["é\\\"ü", "日本", ""])
    }

    @Test func textArraysQuoteAndParse() {
        let values = ["a", "b c", "quote\"d", "back\\slash", "", "{x,y}", "ünï"]
        let literal = PostgresArray.format(values)
        #expect(literal == #"{"a","b c","quote\"d","back\\slash","","{x,y}","ünï"}"#)
        #expect(PostgresArray.parse(literal) == values)
        #expect(PostgresArray.parse("{}") == [])
        #expect(PostgresArray.parse("{a,b}") == ["a", "b"])
        #expect(PostgresArray.parse("{a,NULL}") == nil)
        #expect(PostgresArray.parse("a,b") == nil)
    }

    @Test func conninfoReplacesTheDatabaseAndQuotes() throws {
        let c = PostgresConfiguration("postgresql://u:p%27w@localhost:5433/app?sslmode=disable")
        let r = try c.replacingDatabase("other db")
        #expect(r.conninfo == #"dbname='other db' host='localhost' password='p\'w' port='5433' sslmode='disable' user='u'"#)
        #expect(throws: PostgresError.self) { try PostgresConfiguration("postgresql://[bad").replacingDatabase("x") }
    }
}
