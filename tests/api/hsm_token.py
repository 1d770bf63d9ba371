"""One throwaway SoftHSM2 token per test process (issue 11 item 4, issue 24).

SoftHSM reads SOFTHSM2_CONF once, when the PKCS#11 library is first
initialised in a process, and hub.keys.hsm keeps the library loaded: every test
module that uses a token in this process must use the same token directory.
`softhsm_token()` makes it on first use (the variable stays set, so a hub
started as a subprocess finds the same token); keys are generated on it by
label, and a test that needs keys of its own gives them labels of its own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hub.core.config import HsmSettings
from hub.keys.hsm import HsmSession

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN, PIN, SO_PIN = "cardlookup-test", "1234", "12345678"
CONSENT_LABEL, KEK_LABEL, PEPPER_LABEL = "consent-signing", "kek", "password-pepper"

_made: list[HsmSettings] = []


def softhsm_token() -> HsmSettings:
    """The token (made on first use, with the three base keys) and its settings."""
    if _made:
        return _made[0]
    if not MODULE.exists() or shutil.which("softhsm2-util") is None:
        pytest.fail("SoftHSM2 is missing: scripts/test.sh installs the Debian package softhsm2")
    root = Path(tempfile.mkdtemp(prefix="cardlookup-softhsm-"))
    atexit.register(shutil.rmtree, root, True)
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        env={**os.environ},
    )
    settings = HsmSettings(
        MODULE,
        TOKEN,
        PIN,
        consent_signing_key_label=CONSENT_LABEL,
        key_encryption_key_label=KEK_LABEL,
        password_pepper_key_label=PEPPER_LABEL,
    )
    session = HsmSession.open(settings, rw=True)
    try:
        session.generate_consent_key(CONSENT_LABEL)
        session.generate_kek(KEK_LABEL)
        session.generate_password_pepper(PEPPER_LABEL)
    finally:
        session.close()
    _made.append(settings)
    return settings
