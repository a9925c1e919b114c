// `pgflow flow-run`, `task-run`, `work-queue`, `concurrency-limit`, the service commands and --help,
// the real binary against a real database.
import Foundation
import PGFlowTestSupport
import PGFlowPostgres
import Testing

@Suite struct CLIRunAndQueueTests {
    @Test func flowRunAndTaskRunCommands() async throws {
        try await CLI.with { cli in
            try cli.sql("SELECT pgflow.create_deployment('fr', 'd', './x')")
            let a = try cli.scalar("SELECT pgflow.run_deployment('fr/d')::text", as: String.self)
            let b = try cli.scalar("SELECT pgflow.run_deployment('fr/d')::text", as: String.self)
            let agent = try cli.scalar("SELECT pgflow.register_agent('a', ARRAY['default'])::text", as: String.self)
            try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
            let running = try cli.scalar("SELECT id::text FROM pgflow.flow_runs WHERE state_type = 'RUNNING'", as: String.self)
            try cli.sql("SELECT pgflow.write_log($1::uuid, 20, 'hello from the run', 'stdout')", [running])
            let task = try cli.scalar("SELECT id::text FROM pgflow.create_task_run($1::uuid, 'extract') AS id", [running], as: String.self)

            let ls = try await cli.run("flow-run", "ls", "--state", "RUNNING")
            #expect(ls.status == 0 && ls.stdout.contains(running) && ls.stdout.split(separator: "\n").count == 2, "\(ls)")
            let json = try await cli.run("flow-run", "ls", "--deployment", "fr/d", "--limit", "5", "--json")
            let runs = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            #expect(Set(runs?.compactMap { $0["id"] as? String } ?? []) == [a, b])
            let inspect = try await cli.run("flow-run", "inspect", running, "--json")
            let object = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
            #expect((object?["states"] as? [Any])?.count == 3, "\(inspect)")  // Scheduled, Pending, Running
            #expect(try await cli.run("flow-run", "logs", running).stdout.contains("hello from the run"))
            #expect(try await cli.run("flow-run", "inspect", "not-a-uuid").status == 6)
            #expect(try await cli.run("flow-run", "inspect", UUID().uuidString).status == 5)

            let resume = try await cli.run("flow-run", "resume", running)
            #expect(resume.status == 1 && resume.stderr.contains("only a PAUSED flow run can be resumed"), "\(resume)")
            let cancel = try await cli.run("flow-run", "cancel", running)
            #expect(cancel.status == 0 && cancel.stdout.hasPrefix("Cancelling"), "\(cancel)")
            try cli.sql("SELECT pgflow.set_flow_run_state($1::uuid, 'CANCELLED')", [running])
            #expect(try await cli.run("flow-run", "retry", running).stdout.hasPrefix("Scheduled"))
            let other = a == running ? b : a
            let scheduledCancel = try await cli.run("flow-run", "cancel", other)
            #expect(scheduledCancel.stdout.hasPrefix("Cancelled"), "\(scheduledCancel)")
            try cli.sql("SELECT count(*) FROM pgflow.claim_flow_runs($1::uuid, NULL, 1, true)", [agent])
            let inProgress = try await cli.run("flow-run", "delete", running)
            #expect(inProgress.status == 1 && inProgress.stderr.contains("cancel it first"), "\(inProgress)")
            let delete = try await cli.run("flow-run", "delete", other)
            #expect(delete.status == 0 && delete.stdout == "deleted \(other)\n", "\(delete)")
            #expect(try await cli.run("flow-run", "inspect", other).status == 5)
            #expect(try await cli.run("flow-run", "delete", other).status == 5)

            let tasks = try await cli.run("task-run", "ls", "--flow-run", running)
            #expect(tasks.status == 0 && tasks.stdout.contains("extract"), "\(tasks)")
            #expect(try await cli.run("task-run", "inspect", task).stdout.contains("extract"))
            #expect(try await cli.run("task-run", "inspect", UUID().uuidString).status == 5)
        }
    }

    @Test func workQueueCommands() async throws {
        try await CLI.with { cli in
            #expect(try await cli.run("work-queue", "create", "gpu", "--priority", "2", "--concurrency-limit", "3").status == 0)
            let ls = try await cli.run("work-queue", "ls")
            #expect(ls.stdout.contains("gpu") && ls.stdout.contains("default"), "\(ls)")
            #expect(try await cli.run("work-queue", "pause", "gpu").status == 0)
            #expect(try cli.scalar("SELECT paused FROM pgflow.work_queues WHERE name = 'gpu'", as: Bool.self))
            #expect(try await cli.run("work-queue", "resume", "gpu").status == 0)
            #expect(try await cli.run("work-queue", "set-concurrency-limit", "gpu", "7").status == 0)
            let limit = try cli.scalar("""
                SELECT l.concurrency_limit FROM pgflow.work_queues q JOIN pgflow.concurrency_limits l ON l.id = q.concurrency_limit_id WHERE q.name = 'gpu'
                """, as: Int.self)
            #expect(limit == 7)
            #expect(try cli.scalar("SELECT priority FROM pgflow.work_queues WHERE name = 'gpu'", as: Int.self) == 2, "other settings kept")
            let inspect = try await cli.run("work-queue", "inspect", "gpu", "--json")
            #expect(inspect.stdout.contains(#""concurrency_limit":7"#), "\(inspect)")
            try cli.sql("SELECT pgflow.create_deployment('q', 'd', './x', p_work_queue => 'gpu')")
            try cli.sql("SELECT pgflow.run_deployment('q/d', p_flow_run_name => 'waiting-one')")
            #expect(try await cli.run("work-queue", "preview", "gpu").stdout.contains("waiting-one"))
            #expect(try await cli.run("work-queue", "preview", "nope").status == 5)
            #expect(try await cli.run("work-queue", "pause", "nope").status == 5)
            #expect(try await cli.run("work-queue", "create", "bad name!").status == 6)
            let used = try await cli.run("work-queue", "delete", "gpu")
            #expect(used.status == 1 && used.stderr.contains("work queue 'gpu' is used by deployment(s) q/d"), "\(used)")
            #expect(try await cli.run("work-queue", "delete", "default").status == 1)
            #expect(try await cli.run("work-queue", "delete", "nope").status == 5)
            #expect(try await cli.run("deployment", "delete", "q/d").stdout.contains("and 1 run(s)"))
            let delete = try await cli.run("work-queue", "delete", "gpu")
            #expect(delete.status == 0 && delete.stdout == "deleted work queue gpu\n", "\(delete)")
            #expect(try cli.scalar("SELECT count(*)::int FROM pgflow.concurrency_limits WHERE name = 'work_queue:gpu'", as: Int.self) == 0)
        }
    }

    @Test func concurrencyLimitCommands() async throws {
        try await CLI.with { cli in
            #expect(try await cli.run("concurrency-limit", "create", "db", "2").status == 0)
            #expect(try await cli.run("concurrency-limit", "create", "tag:etl", "1").status == 0)
            let json = try await cli.run("concurrency-limit", "ls", "--json")
            let limits = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
            #expect(limits?.compactMap { $0["name"] as? String } == ["db", "tag:etl"])
            try cli.sql("SELECT pgflow.acquire_concurrency_slots(ARRAY['db'], 1)")
            #expect(try await cli.run("concurrency-limit", "inspect", "db").stdout.contains("slots_in_use       1"))
            let reset = try await cli.run("concurrency-limit", "reset", "db")
            #expect(reset.status == 0 && reset.stdout == "released 1 slot(s) of db\n", "\(reset)")
            #expect(try await cli.run("concurrency-limit", "inspect", "db").stdout.contains("slots_in_use       0"))
            #expect(try await cli.run("concurrency-limit", "reset", "nope").status == 5)
            #expect(try await cli.run("concurrency-limit", "create", "work_queue:x", "1").status == 6)
            #expect(try await cli.run("concurrency-limit", "delete", "db").status == 0)
            #expect(try await cli.run("concurrency-limit", "delete", "db").status == 5)
            #expect(try await cli.run("concurrency-limit", "inspect", "db").status == 5)
        }
    }

    @Test func serviceCommands() async throws {
        try await CLI.with { cli in
            let api = try await cli.run("api", "start")
            #expect(api.status == 2 && api.stderr.contains("run `pgflow-api"))
            let bad = try await cli.run("scheduler", "start", "--missed-runs", "sometimes")
            #expect(bad.status == 2 && bad.stderr == "pgflow-scheduler: unknown missed-run policy \"sometimes\": use run_all, latest or skip\n", "\(bad)")
            try cli.sql("SELECT pgflow.create_deployment('s', 'd', './x')")
            try cli.sql("SELECT pgflow.create_deployment_schedule('s/d', 'cron', '* * * * *')")
            let (scheduler, _, _) = try cli.start(["scheduler", "start", "--horizon", "300"])
            let made = try await eventually(timeout: 60) { try cli.scalar("SELECT count(*)::int FROM pgflow.flow_runs", as: Int.self) >= 5 }
            scheduler.terminate()
            #expect(await exited(scheduler))
            #expect(made, "the scheduler materialised the next five minutes")
            #expect(scheduler.terminationStatus == 0, "SIGTERM is a graceful stop")
            let (agent, _, _) = try cli.start(["agent", "start", "--queue", "default", "--name", "cli-agent"])
            let registered = try await eventually(timeout: 60) { try cli.scalar("SELECT count(*)::int FROM pgflow.agents WHERE name = 'cli-agent' AND status = 'ONLINE'", as: Int.self) == 1 }
            agent.terminate()
            #expect(await exited(agent))
            #expect(registered && agent.terminationStatus == 0)
        }
    }

    @Test func everyCommandHasHelp() async throws {
        let paths = [
            [], ["db"], ["db", "upgrade"], ["db", "status"], ["db", "reset"], ["deploy"], ["deployment"], ["deployment", "ls"],
            ["deployment", "inspect"], ["deployment", "run"], ["deployment", "pause"], ["deployment", "resume"], ["deployment", "delete"],
            ["flow-run"], ["flow-run", "ls"], ["flow-run", "inspect"], ["flow-run", "logs"], ["flow-run", "cancel"], ["flow-run", "retry"],
            ["flow-run", "resume"], ["flow-run", "delete"], ["task-run", "ls"], ["task-run", "inspect"], ["work-queue", "create"],
            ["work-queue", "ls"], ["work-queue", "inspect"], ["work-queue", "preview"], ["work-queue", "pause"], ["work-queue", "resume"],
            ["work-queue", "set-concurrency-limit"], ["work-queue", "delete"], ["concurrency-limit", "create"], ["concurrency-limit", "ls"],
            ["concurrency-limit", "inspect"], ["concurrency-limit", "reset"], ["concurrency-limit", "delete"], ["agent", "start"],
            ["scheduler", "start"], ["api", "start"], ["agent", "ls"], ["flow", "ls"], ["schedule", "ls"], ["schedule", "pause"],
            ["schedule", "resume"], ["schedule", "delete"], ["deployment", "set"], ["db", "prune"],
        ]
        let cli = CLI(db: try .create(schema: false))
        defer { try? cli.db.drop() }
        for path in paths {
            let help = try await cli.run(path + ["--help"])
            #expect(help.status == 0 && help.stdout.contains("USAGE"), "\(path): \(help)")
        }
        let usage = try await cli.run("deployment", "frobnicate")
        #expect(usage.status == 64, "\(usage)")
    }
}
