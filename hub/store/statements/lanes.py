"""SQL of hub.store.lanes: a replica's lane round (heartbeat in
`replicas`, renewal and claim of `lanes` rows), a lane's release, and the
owners view. `CLAIM` is a template (free-lane filter, SKIP LOCKED)."""

from __future__ import annotations

from hub.store.sql import check_named

ENSURE_LANE = "INSERT INTO lanes (bank_code) VALUES (?) ON CONFLICT (bank_code) DO NOTHING"
HEARTBEAT = (
    "INSERT INTO replicas (replica_id, expires) VALUES (?, ?) ON CONFLICT (replica_id) DO UPDATE SET"
    " expires = excluded.expires"
)
LIVE_REPLICAS_AND_BANKS = "SELECT (SELECT COUNT(*) FROM replicas WHERE expires >= ?), (SELECT COUNT(*) FROM lanes)"
RENEW = "UPDATE lanes SET expires = ? WHERE owner = ? RETURNING bank_code, epoch"
RELEASE = "UPDATE lanes SET owner = NULL, expires = NULL WHERE bank_code = ? AND owner = ? AND epoch = ?"
RELEASE_ALL = "UPDATE lanes SET owner = NULL, expires = NULL WHERE owner = ?"
FORGET_REPLICA = "DELETE FROM replicas WHERE replica_id = ?"
OWNERS = "SELECT bank_code, owner FROM lanes ORDER BY bank_code"

CLAIM = (
    "UPDATE lanes SET owner = ?, epoch = epoch + 1, expires = ? WHERE bank_code IN"
    " (SELECT bank_code FROM lanes WHERE (owner IS NULL OR owner <> ?){free}"
    " ORDER BY bank_code LIMIT ?{skip_locked}) RETURNING bank_code, epoch"
)
"""Claims up to LIMIT lanes: `{free}` is `CLAIM_FREE` (free or expired
lanes only) or '' (every lane, `take_all`); `{skip_locked}` the
connection's `skip_locked`."""
CLAIM_FREE = " AND (owner IS NULL OR expires < ?)"

check_named(globals())
