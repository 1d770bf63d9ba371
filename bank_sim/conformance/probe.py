"""The suite's client side: calls a bank's ListCards as the hub would (or as
an intruder would), and records the answer byte for byte.

Responses are read undecoded, so the suite sees each message's exact wire
size and can tell an unparsable message from a well-formed one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import DecodeError

from bank_sim.conformance.credentials import ClientIdentity
from bank_sim.conformance.target import ConformanceTarget
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.consent import subject_digest
from cardlookup.pki import load_ed25519_private
from cardlookup.rpc_errors import ErrorInfo, error_info_of

LIST_CARDS = "/cardlookup.bank.v1.CardDirectoryService/ListCards"
CONSENT_TEXT_VERSION = "conformance"
# The suite reads messages up to this size so it can measure (and name) an
# oversized one instead of failing the whole call on the client's limit.
RECEIVE_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """Everything observable about one ListCards call."""

    code: grpc.StatusCode
    details: str
    error_info: ErrorInfo | None
    raw: tuple[bytes, ...]
    """Each response message as received on the wire."""
    messages: tuple[bank_pb.ListCardsResponse | None, ...]
    """The same messages parsed; None where a message does not parse."""

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK

    @property
    def cards(self) -> list[bank_pb.MaskedCard]:
        return [m.card for m in self.messages if m is not None and m.WhichOneof("item") == "card"]

    @property
    def summaries(self) -> list[bank_pb.ListCardsSummary]:
        return [m.summary for m in self.messages if m is not None and m.WhichOneof("item") == "summary"]

    def describe(self) -> str:
        """A one-line account of the answer for failure explanations."""
        status = self.code.name
        if self.details:
            status += f" ({self.details!r})"
        if self.error_info is not None:
            status += f" with ErrorInfo reason {self.error_info.reason!r} domain {self.error_info.domain!r}"
        return f"{len(self.raw)} message(s), then status {status}"


@dataclass(frozen=True)
class Refusal:
    """A refusal the suite provoked, kept for the errors.* checks."""

    check: str
    situation: str
    answer: Answer


@dataclass(frozen=True)
class ConsentFields:
    """The fields of a Consent the suite signs; tweak one to provoke a refusal."""

    query_id: str
    bank_code: str
    digest: bytes
    scope: int
    issue_time: dt.datetime | None
    expire_time: dt.datetime | None
    card_ref: str = ""
    """Only for scope OPEN_CARD_CASE (the cases.* checks)."""

    def payload(self) -> bytes:
        consent = bank_pb.Consent(
            query_id=self.query_id,
            bank_code=self.bank_code,
            subject_digest=self.digest,
            scope=self.scope,  # type: ignore[arg-type]
            consent_text_version=CONSENT_TEXT_VERSION,
            card_ref=self.card_ref,
        )
        if self.issue_time is not None:
            consent.issue_time.FromDatetime(self.issue_time)
        if self.expire_time is not None:
            consent.expire_time.FromDatetime(self.expire_time)
        return consent.SerializeToString(deterministic=True)


def new_query_id() -> str:
    return str(uuid.uuid4())


def _channel_credentials(ca: Path, identity: ClientIdentity | None) -> grpc.ChannelCredentials:
    if identity is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=identity.key.read_bytes(),
        certificate_chain=identity.cert.read_bytes(),
    )


def _raw(message: bytes) -> bytes:
    return message


def _parse(raw: bytes) -> bank_pb.ListCardsResponse | None:
    try:
        return bank_pb.ListCardsResponse.FromString(raw)
    except DecodeError:
        return None


@dataclass
class Probe:
    """Calls one bank endpoint; shared by all checks of a run."""

    target: ConformanceTarget
    consent_key: Ed25519PrivateKey
    untrusted_key: Ed25519PrivateKey
    untrusted_key_id: str
    refusals: list[Refusal] = field(default_factory=list)
    _baseline: Answer | None = None
    _baseline_query_id: str = ""
    _baseline_consent: bank_pb.SignedConsent | None = None

    @classmethod
    def for_target(cls, target: ConformanceTarget) -> Probe:
        if target.untrusted_key is not None:
            untrusted = load_ed25519_private(target.untrusted_key.path)
            untrusted_id = target.untrusted_key.key_id
        else:
            untrusted = Ed25519PrivateKey.generate()
            untrusted_id = f"conformance-untrusted-{uuid.uuid4().hex[:8]}"
        return cls(target, load_ed25519_private(target.consent_key.path), untrusted, untrusted_id)

    # -- building requests -------------------------------------------------

    def consent_fields(
        self, query_id: str, id_number: str | None = None, full_name: str | None = None
    ) -> ConsentFields:
        """Fields of a consent that is valid for the known subject now."""
        subject = self.target.subject
        now = self.target.clock.now()
        return ConsentFields(
            query_id=query_id,
            bank_code=self.target.bank_code,
            digest=subject_digest(query_id, id_number or subject.id_number, full_name or subject.full_name),
            scope=bank_pb.CONSENT_SCOPE_LIST_MASKED_CARDS,
            issue_time=now - dt.timedelta(minutes=1),
            expire_time=now + dt.timedelta(hours=24),
        )

    def sign(
        self, payload: bytes, key: Ed25519PrivateKey | None = None, key_id: str | None = None
    ) -> bank_pb.SignedConsent:
        signer = key or self.consent_key
        return bank_pb.SignedConsent(
            consent=payload, signature=signer.sign(payload), key_id=key_id or self.target.consent_key.key_id
        )

    def request(
        self,
        query_id: str,
        consent: bank_pb.SignedConsent | None,
        id_number: str | None = None,
        full_name: str | None = None,
    ) -> bank_pb.ListCardsRequest:
        subject = self.target.subject
        request = bank_pb.ListCardsRequest(
            query_id=query_id,
            subject=bank_pb.Subject(
                full_name=subject.full_name if full_name is None else full_name,
                id_number=subject.id_number if id_number is None else id_number,
            ),
        )
        if consent is not None:
            request.consent.CopyFrom(consent)
        return request

    def valid_request(self, query_id: str | None = None) -> bank_pb.ListCardsRequest:
        qid = query_id or new_query_id()
        return self.request(qid, self.sign(self.consent_fields(qid).payload()))

    # -- calling -----------------------------------------------------------

    async def call(self, request: bank_pb.ListCardsRequest) -> Answer:
        """One ListCards call as the hub makes it."""
        return await self.call_as(request, self.target.hub_client)

    async def call_as(
        self,
        request: bank_pb.ListCardsRequest,
        identity: ClientIdentity | None,
        server_name: str | None = None,
    ) -> Answer:
        """One ListCards call on a fresh channel, presenting `identity` (None:
        no client certificate) and verifying the bank by `server_name`."""
        target = self.target
        options = [
            ("grpc.ssl_target_name_override", server_name or target.expected_server_name),
            ("grpc.max_receive_message_length", RECEIVE_LIMIT),
            # One attempt per call: the suite judges what the bank answers,
            # not what a retry policy makes of it.
            ("grpc.enable_retries", 0),
        ]
        credentials = _channel_credentials(target.ca_cert, identity)
        async with grpc.aio.secure_channel(target.address, credentials, options=options) as channel:
            method = channel.unary_stream(
                LIST_CARDS, request_serializer=bank_pb.ListCardsRequest.SerializeToString, response_deserializer=_raw
            )
            raw: list[bytes] = []
            call = method(request, timeout=target.timeout)
            try:
                async for message in call:
                    raw.append(message)
                code = await call.code()
                return Answer(code, await call.details() or "", None, tuple(raw), tuple(map(_parse, raw)))
            except grpc.aio.AioRpcError as error:
                return Answer(
                    error.code(), error.details() or "", error_info_of(error), tuple(raw), tuple(map(_parse, raw))
                )

    async def baseline(self) -> tuple[Answer, bank_pb.ListCardsRequest]:
        """The answer to a correct request for the known subject (made once)."""
        if self._baseline is None or self._baseline_consent is None:
            self._baseline_query_id = new_query_id()
            request = self.valid_request(self._baseline_query_id)
            self._baseline_consent = request.consent
            self._baseline = await self.call(request)
        request = self.request(self._baseline_query_id, self._baseline_consent)
        return self._baseline, request
