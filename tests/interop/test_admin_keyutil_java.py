"""A Java admin tool authenticates with an admin key that our hdl-keyutil re-encrypted, on both servers.

The 301:0.NA/TEST key (admpriv.bin) is re-encrypted with each scheme hdl-keyutil writes; Java's hdl-list
reads it (passphrase on standard input), signs the challenge with it and lists the prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
from java import AdminTarget, run_java

from hdlserver.cli import keyutil

PASSPHRASE = "keyutil-pass"


@pytest.mark.parametrize("scheme", sorted(keyutil.SCHEMES))
@pytest.mark.parametrize("target_name", ["ours", "java"])
def test_java_tool_authenticates_with_a_key_from_hdl_keyutil(admin_targets: dict[str, AdminTarget],
                                                             tmp_path: Path, scheme: str, target_name: str) -> None:
    target = admin_targets[target_name]
    key = tmp_path / "admpriv.bin"
    (tmp_path / "pass.txt").write_text(PASSPHRASE + "\n")
    assert keyutil.main(["--encrypt", str(target.admin_key), "-o", str(key), "--scheme", scheme,
                         "--new-passphrase-file", str(tmp_path / "pass.txt")]) == 0
    run = run_java("hdl-list", "0.NA/TEST", "301", key, "0.NA/TEST", config_dir=target.client_dir,
                   input_text=PASSPHRASE + "\n")
    assert run.returncode == 0, run.describe()
    assert "TEST/HELLO" in run.stdout.upper(), run.describe()
