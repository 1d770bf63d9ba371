"""Key custody in an HSM (issue 11 item 4), against SoftHSM2 from Debian's
packages (scripts/test.sh installs `softhsm2`): the consent-signing key
(Ed25519) and the key-encryption key are generated on a throwaway token,
are not extractable, and a real hub uses them in place: banks (bank_sim)
verify the consents the token signed, and reports sealed under the token's
KEK open again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import resources_pb2 as hub_pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import HsmSettings, HubConfig
from hub.keys.crypto import Envelope
from hub.keys.hsm import HsmError, HsmSession
from tests.api.conftest import FAST, served_harness
from tests.api.helpers import HubHarness
from tests.api.hsm_token import CONSENT_LABEL, KEK_LABEL, MODULE, PEPPER_LABEL, TOKEN, softhsm_token

HSM_CONSENT_KEY_ID = "hub-consent-hsm-1"


@pytest.fixture(scope="module")
def token() -> HsmSettings:
    """The process's throwaway SoftHSM2 token with the three keys generated
    on it (tests/api/hsm_token.py)."""
    return softhsm_token()


def test_keys_on_the_token_cannot_leave_it(token: HsmSettings) -> None:
    session = HsmSession.open(token)
    try:
        raw = session._session
        private = raw.get_key(ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS, label=CONSENT_LABEL)
        secret = raw.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=KEK_LABEL)
        pepper = raw.get_key(ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, label=PEPPER_LABEL)
        for key in (private, secret, pepper):
            assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
        # The public half is what banks get.
        assert b"BEGIN PUBLIC KEY" in session.consent_public_pem(CONSENT_LABEL)
        with pytest.raises(HsmError, match="no single"):
            session.kek("no-such-label")
    finally:
        session.close()
    with pytest.raises(HsmError, match="cannot open token"):
        HsmSession.open(HsmSettings(MODULE, TOKEN, "0000", key_encryption_key_label=KEK_LABEL))


@pytest.fixture
async def hsm_hub(
    token: HsmSettings, pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    session = HsmSession.open(token)
    public = session.consent_public_key(CONSENT_LABEL)
    session.close()
    # The banks trust only the HSM's consent key: a file-signed consent would be refused.
    fleet = BankFleet(
        FleetConfig.default(
            pki, population, count=16, clock=clock, admin_port=None, trusted_consent_keys={HSM_CONSENT_KEY_ID: public}
        )
    )
    await fleet.start()
    config = HubConfig.dev(
        pki,
        fleet.addresses,
        tmp_path,
        listen="127.0.0.1:0",
        timings=FAST,
        hsm=token,
        consent_key_id=HSM_CONSENT_KEY_ID,
        key_encryption_key_id="kek-hsm-1",
    )
    try:
        async with served_harness(config, pki, population, fleet, clock) as served:
            yield served
    finally:
        await fleet.stop(grace=0)


async def test_a_consent_signed_in_the_hsm_is_verified_by_the_banks(hsm_hub: HubHarness) -> None:
    hub = hsm_hub
    person = hub.eligible(0)
    await hub.enrol(person)
    banks = ["102", "103", "104", "301"]
    ready = await hub.ready_query(person, banks)
    assert {o.bank_code: o.state for o in ready.bank_outcomes} == dict.fromkeys(
        banks, hub_pb.BANK_OUTCOME_STATE_ANSWERED
    )
    # The user's identity record is sealed under the token's KEK (its id
    # recorded; READY reports are sealed to the user's password key), and
    # the hub opens it again to send the ready SMS and to answer GetReport.
    # (Issue 22: the record is encrypted under the user's data key, which
    # the KEK seals.)
    row = await hub.server.db.fetch_one("SELECT wrapped_key FROM user_data_keys WHERE user_id = ?", (person.user_id,))
    assert row is not None and Envelope.key_id_of(row["wrapped_key"]) == "kek-hsm-1"
    report = await hub.client.get_report(person.user_id, ready.query_id, person.payment_password)
    expected = sum(len(hub.population.cards_at(code, person.id_number)) for code in banks)
    assert len(report.cards) == expected > 0


async def test_the_payment_password_is_peppered_on_the_hsm(hsm_hub: HubHarness) -> None:
    """Issue 17: with `password_pepper_key_label` argon2id runs over an HMAC
    made on the token: neither the database nor every key file confirms a
    password; a hash peppered under the index key is re-hashed on the HSM at
    the next correct password."""
    import argon2
    from argon2.exceptions import VerifyMismatchError

    from hub.identity.passwords import HSM_PEPPERED
    from hub.keys.crypto import HubKeys

    hub = hsm_hub
    person = hub.eligible(1)
    await hub.enrol(person)
    row = await hub.server.db.fetch_one("SELECT password_hash FROM users WHERE user_id = ?", (person.user_id,))
    assert row is not None and str(row["password_hash"]).startswith(HSM_PEPPERED)
    stored = str(row["password_hash"]).removeprefix(HSM_PEPPERED)
    keys = HubKeys.load(hub.server.config)
    argon = argon2.PasswordHasher()
    for guess in (person.payment_password, keys.keyed_hash.digest(person.payment_password, "payment_password_pepper")):
        with pytest.raises(VerifyMismatchError):
            argon.verify(stored, guess)  # the database and every key file: no oracle
    assert keys.hsm_password_pepper is not None
    assert argon.verify(stored, keys.hsm_password_pepper(person.payment_password))  # only through the token
    # A hash peppered under the index key (before the HSM key was configured).
    older = "pep1:" + argon.hash(keys.keyed_hash.digest(person.payment_password, "payment_password_pepper"))

    async def put(conn: object) -> None:
        await conn.execute(  # type: ignore[attr-defined]
            "UPDATE users SET password_hash = ? WHERE user_id = ?", (older, person.user_id)
        )

    await hub.server.db.write(put)
    qid = (await hub.ready_query(person, ["102", "103"])).query_id
    await hub.client.get_report(person.user_id, qid, person.payment_password)
    row = await hub.server.db.fetch_one("SELECT password_hash FROM users WHERE user_id = ?", (person.user_id,))
    assert row is not None and str(row["password_hash"]).startswith(HSM_PEPPERED)
