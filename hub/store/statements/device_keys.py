"""SQL of hub.store.device_keys: the `device_keys` table (a user's
registered device public key and its epoch) and the reads that pick which
key a report is sealed to (the device's, else the payment-password key)."""

from __future__ import annotations

from hub.store.sql import check_named

GET = "SELECT user_id, epoch, public_key FROM device_keys WHERE user_id = ?"
KEY = "SELECT epoch, public_key FROM device_keys WHERE user_id = ?"
PUT = (
    "INSERT INTO device_keys (user_id, epoch, public_key, update_time) VALUES (?, ?, ?, ?) ON CONFLICT"
    " (user_id) DO UPDATE SET epoch = excluded.epoch, public_key = excluded.public_key, update_time ="
    " excluded.update_time"
)
OWNER_OF_QUERY = "SELECT user_id FROM queries WHERE query_id = ?"
KEYS_OF_USER = (
    "SELECT (SELECT epoch FROM device_keys WHERE user_id = ?) AS d_epoch, (SELECT public_key FROM"
    " device_keys WHERE user_id = ?) AS d_key, (SELECT epoch FROM user_keys WHERE user_id = ?) AS"
    " p_epoch, (SELECT public_key FROM user_keys WHERE user_id = ?) AS p_key"
)
USER_KEY = "SELECT epoch, public_key FROM user_keys WHERE user_id = ?"

check_named(globals())
