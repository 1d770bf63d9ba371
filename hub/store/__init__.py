"""The hub's store. `db` is the interface and `open_database` picks the
engine: `sqlite` (aiosqlite, one process: WAL, secure_delete, batched
writes) or `postgres` (asyncpg, shared by replicas); each other module owns
the tables of one domain area and all SQL for them, written once for both."""
