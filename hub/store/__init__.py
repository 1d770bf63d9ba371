"""The hub's store. `db` is the connection layer (SQLite through sqlite3 on
its own threads, or PostgreSQL; WAL, secure_delete, batched writes, migrations); each other module owns the
tables of one domain area and all SQL for them."""
