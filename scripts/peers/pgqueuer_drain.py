"""PgQueuer's side of scripts/bench-peers.sh (not a test): the same drain as pgflow's, 20,000 no-op jobs.

    pgqueuer_drain.py setup DSN N     installs PgQueuer's tables (once) and enqueues N no-op jobs in one batch
    pgqueuer_drain.py work DSN BATCH  one worker process: drains the queue with batch BATCH, then prints
                                      "<first job started> <last job ended> <jobs run>" (epoch seconds)
    pgqueuer_drain.py left DSN        prints how many jobs are still queued

The clock runs from the first job body's start to the last job body's end over all workers: PgQueuer's
start-up and its final status flush are left out, which favours PgQueuer, never pgflow.
"""

import asyncio
import sys
import time
from datetime import timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, QueueManager, Queries
from pgqueuer.domain.types import QueueExecutionMode


async def setup(dsn: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    if not await queries.schema_is_installed():
        await queries.install()
    await conn.execute("TRUNCATE pgqueuer, pgqueuer_log")
    chunk = 5000
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        await queries.enqueue(["noop"] * k, [None] * k, [0] * k)
    await conn.close()


async def work(dsn: str, batch: int) -> None:
    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    first: list[float] = []
    last = [0.0]
    count = [0]

    @qm.entrypoint("noop")
    async def noop(job) -> None:
        now = time.time()
        if not first:
            first.append(now)
        count[0] += 1
        last[0] = time.time()

    await qm.run(batch_size=batch, mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))
    await conn.close()
    print(f"{first[0] if first else 0} {last[0]} {count[0]}", flush=True)


async def left(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    print(await conn.fetchval("SELECT count(*) FROM pgqueuer"))
    await conn.close()


if __name__ == "__main__":
    mode, dsn = sys.argv[1], sys.argv[2]
    if mode == "setup":
        asyncio.run(setup(dsn, int(sys.argv[3])))
    elif mode == "work":
        asyncio.run(work(dsn, int(sys.argv[3])))
    elif mode == "left":
        asyncio.run(left(dsn))
    else:
        sys.exit(f"unknown mode {mode}: setup DSN N | work DSN BATCH | left DSN")
