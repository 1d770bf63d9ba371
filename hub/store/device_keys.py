"""The users' device report keys (issue 17): the X25519 public key the
user's app registered, and its epoch. No secret: the private key never
leaves the device.

Tables (component "device_keys", its own migration list):
  device_keys  one row per user whose app registered a key (EnrollUser's
               `report_public_key`, or ReplaceReportKey after a device
               change); the epoch grows by one at each replacement.

Also the two reads the answer sealer needs per query (hub.reports.sealing): whose
query it is, and the keys it seals to.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hub.store.db import Conn, Database, to_micros
from hub.store.statements import device_keys as sql

COMPONENT = "device_keys"
MIGRATIONS = [
    """
    CREATE TABLE device_keys (
        user_id TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        public_key BLOB NOT NULL,
        update_time INTEGER NOT NULL
    )
    """,
]


@dataclass(frozen=True)
class DeviceKey:
    user_id: str
    epoch: int
    public_key: bytes


class DeviceKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def get(self, user_id: str) -> DeviceKey | None:
        r = await self._db.fetch_one(sql.GET, (user_id,))
        return DeviceKey(str(r["user_id"]), int(r["epoch"]), bytes(r["public_key"])) if r else None

    async def put(self, user_id: str, public_key: bytes, now: dt.datetime) -> int:
        """Registers or replaces the user's key; returns its epoch (unchanged
        when the same key is registered again)."""

        async def run(conn: Conn) -> int:
            row = await conn.fetch_one(sql.KEY + conn.for_update, (user_id,))
            if row is not None and bytes(row["public_key"]) == public_key:
                return int(row["epoch"])
            epoch = int(row["epoch"]) + 1 if row else 1
            await conn.execute(
                sql.PUT,
                (user_id, epoch, public_key, to_micros(now)),
            )
            return epoch

        return await self._db.write(run)

    async def query_user(self, query_id: str) -> str | None:
        """The owner of a query (table of hub.store.queries)."""
        owner = await self._db.fetch_val(sql.OWNER_OF_QUERY, (query_id,))
        return None if owner is None else str(owner)

    async def sealing_keys(self, user_id: str) -> tuple[DeviceKey | None, tuple[int, bytes] | None]:
        """The user's device key and payment-password key (epoch, public key)
        in one statement: what an answer is sealed to, read per answer so that
        a key replaced while a query runs is used from the next answer on."""
        r = await self._db.fetch_one(
            sql.KEYS_OF_USER,
            (user_id, user_id, user_id, user_id),
        )
        if r is None:
            return None, None
        device = DeviceKey(user_id, int(r["d_epoch"]), bytes(r["d_key"])) if r["d_key"] is not None else None
        password = (int(r["p_epoch"]), bytes(r["p_key"])) if r["p_key"] is not None else None
        return device, password

    async def password_key(self, user_id: str) -> tuple[int, bytes] | None:
        """(epoch, public key) of the user's payment-password key (table of
        hub.store.user_keys), if any."""
        r = await self._db.fetch_one(sql.USER_KEY, (user_id,))
        return (int(r["epoch"]), bytes(r["public_key"])) if r else None
