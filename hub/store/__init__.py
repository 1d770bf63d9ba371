"""The hub's store. `types` is the interface (`Database`, and `Conn` for
write callbacks), `factory.open_database` picks the engine: `sqlite`
(aiosqlite, one process: WAL, secure_delete, batched writes) or `postgres`
(asyncpg, shared by replicas); `db` re-exports both. `sql` translates the
portable SQL for PostgreSQL; `statements` holds named statements by concern.
Each other module owns the tables of one domain area and all SQL for them,
written once for both engines."""
