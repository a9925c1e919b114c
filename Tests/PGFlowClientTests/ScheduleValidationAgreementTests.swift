// One corpus of schedules through both validators: SQL's pgflow.schedule_error (what
// create_deployment_schedule accepts) and the scheduler's Swift parsers (what it can evaluate). They
// must agree on cron and RRULE; for intervals SQL may only be stricter (its minimum is 1 second).
import Foundation
import PGFlowPostgres
import PGFlowSchedule
import PGFlowTestSupport
import Testing

@Suite struct ScheduleValidationAgreementTests {
    /// Cron expressions, valid and not, including the edges of each field and Vixie-cron quirks.
    static let cronCorpus = [
        "* * * * *", "0 6 * * *", "*/15 9-17 * * MON-FRI", "0 0 1 1 *", "59 23 31 12 7", "0 0 * * 0", "0 0 * * FRI-SUN",
        "0 0 */10 * MON", "5/15 * * * *", "0 0 * jan-Dec *", "1,2,3 4,5 6,7 8,9 1,2", "0 12 * * 1-5/2", "0 0 * * 7/2",
        "5/+2 * * * *", "  0 6 * * *  ", "0\t6 * * *", "@hourly", "@daily", "@Weekly", "@yearly", "@annually", "@monthly",
        "@midnight", "@HOURLY ",
        "", "   ", "61 * * * *", "a b c d e", "* * * *", "0 6 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 32 * *",
        "0 0 * 13 *", "0 0 * 0 *", "0 0 * * 8", "0 0 L * ?", "0 0 1W * *", "0 0 * * MON#2", "1,,2 * * * *", "1, * * * *",
        ",1 * * * *", "*/0 * * * *", "*/-1 * * * *", "*/x * * * *", "1/2/3 * * * *", "-5 * * * *", "5- * * * *", "10-5 * * * *",
        "1-2-3 * * * *", "0 0 * * SUNDAY", "0 0 * * MO", "@every", "@reboot", "@ hourly", "*/99999999999999999999 * * * *",
        "+5 * * * *", "0 0 * JAN-FEB-MAR *", "0 0 * * SAT-MON",
    ]

    /// RRULEs, valid and not: every supported part, its ranges, and the rules about combining them.
    static let rruleCorpus = [
        "FREQ=DAILY", "FREQ=DAILY;BYHOUR=6", "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=9;BYMINUTE=30", "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=1MO,+2TU", "FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=1,-1", "FREQ=YEARLY;BYDAY=53MO", "FREQ=HOURLY;INTERVAL=6",
        "FREQ=MINUTELY;INTERVAL=15;COUNT=10", "FREQ=DAILY;UNTIL=20261231", "FREQ=DAILY;UNTIL=20261231T235959Z", "freq=daily;byhour=7",
        "RRULE:FREQ=DAILY", "FREQ=WEEKLY;WKST=SU;BYDAY=SA", "FREQ=DAILY;", ";FREQ=DAILY", "FREQ = DAILY ; BYHOUR = 5",
        "DTSTART:20260105T090000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO", "DTSTART;TZID=Europe/Berlin:20260105T090000\nRRULE:FREQ=DAILY",
        "DTSTART;VALUE=DATE:20260105\nRRULE:FREQ=DAILY", "DTSTART:20240229\nFREQ=YEARLY", "\n\nFREQ=DAILY\n",
        "", "BYHOUR=6", "FREQ=SECONDLY", "FREQ=FORTNIGHTLY", "FREQ=DAILY;BYHOUR=99", "FREQ=DAILY;BYHOUR=24", "FREQ=DAILY;BYHOUR=-1",
        "FREQ=DAILY;BYMINUTE=60", "FREQ=DAILY;BYMONTH=13", "FREQ=DAILY;BYMONTH=0", "FREQ=MONTHLY;BYMONTHDAY=0",
        "FREQ=MONTHLY;BYMONTHDAY=32", "FREQ=MONTHLY;BYMONTHDAY=-32", "FREQ=DAILY;BYHOUR=1,,2", "FREQ=DAILY;BYHOUR=x",
        "FREQ=DAILY;INTERVAL=0", "FREQ=DAILY;COUNT=-1", "FREQ=DAILY;COUNT=3;UNTIL=20261231", "FREQ=DAILY;UNTIL=20260230",
        "FREQ=DAILY;UNTIL=20261231Z", "FREQ=DAILY;UNTIL=2026123", "FREQ=DAILY;UNTIL=20261231T246000", "FREQ=WEEKLY;BYDAY=1MO",
        "FREQ=MONTHLY;BYDAY=6FR", "FREQ=YEARLY;BYDAY=54MO", "FREQ=MONTHLY;BYDAY=0MO", "FREQ=WEEKLY;BYDAY=XX", "FREQ=WEEKLY;BYDAY=",
        "FREQ=DAILY;WKST=XX", "FREQ=DAILY;BYSECOND=5", "FREQ=DAILY;BYSETPOS=1", "FREQ=DAILY;FOO=1", "FREQ=DAILY;FREQ=WEEKLY",
        "FREQ=DAILY;BYHOUR", "FREQ=DAILY\nFREQ=WEEKLY", "DTSTART:20260105T090000Z\nDTSTART:20260106T090000Z\nFREQ=DAILY",
        "DTSTART;TZID=Mars/Olympus:20260105T090000\nFREQ=DAILY", "DTSTART;FOO=1:20260105T090000\nFREQ=DAILY",
        "DTSTART:20260105Z\nFREQ=DAILY", "DTSTART:2026\nFREQ=DAILY", "DTSTART:20260105T090000Z", "EXDATE:20260105\nFREQ=DAILY",
    ]

    /// The reason pgflow.schedule_error gives, or nil when SQL accepts the schedule.
    func sqlError(_ kind: String, _ expression: String, on c: PostgresConnection) throws -> String? {
        try c.query("SELECT pgflow.schedule_error($1, $2, 'UTC')", [kind, expression]).rows.first!.decode(String?.self, at: 0)
    }

    @Test func cronValidationAgrees() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            var accepted = 0
            for expression in Self.cronCorpus {
                let sql = try sqlError("cron", expression, on: c)
                let swift: String?
                do { _ = try CronSchedule(parsing: expression); swift = nil } catch { swift = "\(error)" }
                #expect((sql == nil) == (swift == nil), "cron \(expression.debugDescription): SQL says \(sql ?? "valid"), Swift says \(swift ?? "valid")")
                if sql == nil { accepted += 1 }
            }
            #expect(accepted > 10 && accepted < Self.cronCorpus.count - 10, "the corpus has both valid and invalid expressions")
        }
    }

    @Test func rruleValidationAgrees() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z, for rules without DTSTART
            var accepted = 0
            for rule in Self.rruleCorpus {
                let sql = try sqlError("rrule", rule, on: c)
                let swift: String?
                do { _ = try RRuleSchedule(parsing: rule, dtstart: start, timeZone: .gmt); swift = nil } catch { swift = "\(error)" }
                #expect((sql == nil) == (swift == nil), "rrule \(rule.debugDescription): SQL says \(sql ?? "valid"), Swift says \(swift ?? "valid")")
                if sql == nil { accepted += 1 }
            }
            #expect(accepted > 10 && accepted < Self.rruleCorpus.count - 10, "the corpus has both valid and invalid rules")
        }
    }

    @Test func everyIntervalSQLAcceptsTheSchedulerCanRun() async throws {
        try await TestDatabase.with { db in
            let c = try db.connect()
            let corpus = ["1 second", "1.5 seconds", "15 minutes", "1 hour", "1 day", "1 week", "1 month", "10 years", "1 day 2 hours",
                          "0", "0 seconds", "1 microsecond", "0.999 seconds", "-1 hour", "11 years", "nonsense", "", "1 fortnight"]
            let rejected = ["0", "0 seconds", "1 microsecond", "0.999 seconds", "-1 hour", "11 years", "nonsense", "", "1 fortnight"]
            for text in corpus {
                let sql = try sqlError("interval", text, on: c)
                #expect((sql != nil) == rejected.contains(text), "interval \(text.debugDescription): SQL says \(sql ?? "valid")")
                guard sql == nil else { continue }
                let seconds = try c.query("SELECT extract(epoch FROM $1::interval)::float8", [text]).scalar(Double.self)
                #expect(throws: Never.self, "interval \(text): the scheduler rejects \(seconds) s") {
                    _ = try IntervalSchedule(every: seconds, anchor: Date(timeIntervalSince1970: 0))
                }
            }
        }
    }
}
