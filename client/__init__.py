"""The app backend's client of the card-lookup hub (cardlookup.hub.v1,
over mutual TLS). Guide: docs/app-backend.md; runnable examples:
docs/examples/app_sync.py and docs/examples/app_async.py.

Public API:

- client.options.ClientOptions: where the hub is (one address, or several
  hub replicas: round_robin with client-side health checking), the
  certificates, the deadlines (10 s per call, 30 s CreateQuery, 25 h
  WatchQuery) and the retry policy (RetryPolicy; RETRIED_METHODS are the
  calls safe to re-send). ClientOptions.from_pki(pki_dir, "host:port") (or
  a list of addresses) for a development PKI.
- client.sync.CardLookupClient (blocking; `with`) and
  client.aio.AsyncCardLookupClient (asyncio; `async with`, create it inside
  the running loop), with the same methods and parameters: enroll_user,
  get_user, list_banks, start_verification, create_query, get_query,
  watch_query, list_queries, iter_queries, get_report, wait_ready,
  connect, close.
- client.errors: CardLookupError (reason, code, message, metadata,
  retry_delay, field_violations, sentence()); the categories Retryable,
  UserMustAct and Refused; one class per ErrorReason under them, e.g.
  CooldownActive, PasswordLocked, SmsCodeWrong, HubUnavailable (also
  transport failures); `translated()`, the one boundary both clients use.
- client.devface.DevFaceProvider: the development face-verification
  provider (signs FaceAttestations with the dev PKI's key).
- The `cardlookup` command (client.cli).

This package imports only cardlookup (the shared kernel): the demos, local
process stacks and replica harnesses, which start the hub and the bank
simulator, live in devstack/.
"""
