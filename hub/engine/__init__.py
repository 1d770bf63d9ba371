"""The query engine: the lifecycle of an accepted query.

    ACCEPTED --first bank final--> RUNNING --every bank final--> READY --R11--> EXPIRED

A query is durable before any bank is called (`submit` commits the query
and one PENDING task per bank). Then one asyncio task per chosen bank runs
the fan-out retry loop (hub.fanout); when a bank's outcome is final it is
written atomically with the bank's sealed, validated answer. When the last
bank is final, the report is built, sealed (to the owner's payment-password
key through the API's report sealer, issue 12; else under its own data key),
stored, and the subject and per-bank answers are deleted. On start the engine
resumes every unfinished query; bank calls are idempotent on the query id,
and an answer is only ever stored once per bank, so a crash can neither lose
nor duplicate cards.

Several replicas (issues 8 and 16) run this engine on one PostgreSQL
database. Each bank has one owner, the replica holding its bank lane
(hub.engine.lanes, hub.store.lanes): it makes every call to that bank, for
every query, so the bank's concurrency cap and breaker are its own, in
memory. Outcomes (and failure records) of all of a replica's lanes are
committed together by its group commit (hub.store.batches), fenced by the
lane epoch; the query's pending count moves in the same transaction, and
the replica that brings it to zero builds the report. New queries reach
the lane owners on the store's WORK channel. Every replica's lane loop
also builds reports a dead replica left unbuilt and sends ready SMSs
nobody sent. WatchQuery follows progress from the store's PROGRESS
notifications, so it works on any replica whichever replica does the
work. On SQLite the same code runs in one process, which owns every lane.

The engine never holds plaintext personal data at rest: the subject is
sealed in the store and only opened in memory to build bank requests.

The engine (docs/hub-engine.md) is a package of named parts:

    core        QueryEngine: lifecycle, submit, reads; wires the parts
    lanes       the bank lanes this replica owns and their tasks (issue 16)
    tasks       one state object per (query, bank) task, and its runner
    batches     a task's records handed to the store's group commit
    completion  the report when a query's last bank is final; the ready SMS
    watch       WatchQuery, from the store's PROGRESS notifications
    rounds      the lane loop: lane rounds, orphaned reports, unsent SMSs
"""

from hub.engine.core import QueryEngine, ReadyListener, ReportOpener, ReportSealer, default_replica_id

__all__ = ["QueryEngine", "ReadyListener", "ReportOpener", "ReportSealer", "default_replica_id"]
