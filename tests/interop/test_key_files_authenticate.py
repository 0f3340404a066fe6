"""Key files made by either side authenticate to either server, through our client and through Java's.

Java hdl-keygen and our hdl-keygen each make RSA and DSA key pairs, unencrypted and passphrase-encrypted.
For each pair an identity handle holding the public key file's bytes (HS_PUBKEY at index 300, with an
HS_ADMIN naming that identity) is created. Our client library, with the private key as our key-file code
reads it, then changes and deletes that handle on hdlserver and on the Java server (the Java server judges
our signatures); and Java hdl-delete, given the same private key file (its passphrase on stdin), deletes it
from hdlserver (hdlserver verifies Java's signatures, made with a key Java read from the file).

How the files themselves decode on the other side (byte for byte) is tested in tests/unit/test_keygen_cli.py
and test_files_both_ways.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from java import AdminTarget, java_keygen, run_java

from hdlserver.auth import keys
from hdlserver.cli import keygen
from hdlserver.client.admin import AdminClient, PublicKeyIdentity
from hdlserver.wire.valuedata import ALL_PERMISSIONS, HS_ADMIN, HS_PUBKEY, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

pytestmark = pytest.mark.interop

SERVERS = ["ours", "java"]
IDENTITY_INDEX = 300
PASSPHRASE = "interop-passphrase"


@dataclass(frozen=True)
class KeyFiles:
    maker: str  # "java" or "ours"
    algorithm: str
    private: Path
    public: Path
    passphrase: str | None

    @property
    def label(self) -> str:
        return f"{self.maker}-{self.algorithm}-{'encrypted' if self.passphrase else 'plain'}"


KINDS = [(maker, algorithm, encrypted) for maker in ("java", "ours") for algorithm in ("RSA", "DSA")
         for encrypted in (False, True)]


def kind_id(kind: tuple[str, str, bool]) -> str:
    maker, algorithm, encrypted = kind
    return f"{maker}-{algorithm}-{'encrypted' if encrypted else 'plain'}"


def make_key_files(directory: Path, maker: str, algorithm: str, encrypted: bool) -> KeyFiles:
    directory.mkdir(parents=True)
    files = KeyFiles(maker, algorithm, directory / "privkey.bin", directory / "pubkey.bin",
                     PASSPHRASE if encrypted else None)
    if maker == "java":
        java_keygen(files.private, files.public, algorithm=algorithm, passphrase=files.passphrase)
    else:
        passphrase_file = directory / "passphrase.txt"
        passphrase_file.write_text(f"{PASSPHRASE}\n", encoding="utf-8")
        protection = ["--passphrase-file", str(passphrase_file)] if encrypted else ["--no-encrypt"]
        assert keygen.main(["-alg", algorithm, *protection, str(files.private), str(files.public)]) == 0
    assert keys.is_encrypted_key_file(files.private.read_bytes()) == encrypted, files.label
    return files


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyFiles]:
    """All eight kinds of key pair, made once."""
    base = tmp_path_factory.mktemp("key-files")
    return {kind_id(kind): make_key_files(base / kind_id(kind), *kind) for kind in KINDS}


def create_identity(target: AdminTarget, files: KeyFiles, handle: str) -> None:
    admin_record = AdminRecord(ALL_PERMISSIONS, handle.encode(), IDENTITY_INDEX)
    values = [HandleValue(100, HS_ADMIN, encode_admin(admin_record)),
              HandleValue(IDENTITY_INDEX, HS_PUBKEY, files.public.read_bytes())]
    with target.secret_admin() as admin:
        admin.create_handle(handle, values)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_our_client_authenticates_with_key_file(admin_targets: dict[str, AdminTarget], key_files: dict[str, KeyFiles],
                                                kind: tuple[str, str, bool], server: str) -> None:
    files, target = key_files[kind_id(kind)], admin_targets[server]
    handle = f"TEST/key-ours-{files.label}"
    create_identity(target, files, handle)
    passphrase = files.passphrase.encode() if files.passphrase else None
    identity = PublicKeyIdentity(handle.encode(), IDENTITY_INDEX, keys.load_private_key(files.private, passphrase))
    url = HandleValue(1, b"URL", f"http://example.org/{files.label}".encode())
    with AdminClient(target.address, identity) as admin:
        admin.add_values(handle, [url])
        assert [v.data for v in target.resolve(handle) if v.index == 1] == [url.data]
        admin.delete_handle(handle)
    target.assert_not_found(handle)


@pytest.mark.parametrize("kind", KINDS, ids=kind_id)
def test_java_hdl_delete_authenticates_with_key_file(admin_targets: dict[str, AdminTarget],
                                                     key_files: dict[str, KeyFiles], tmp_path: Path,
                                                     kind: tuple[str, str, bool]) -> None:
    files, target = key_files[kind_id(kind)], admin_targets["ours"]
    handle = f"TEST/key-java-{files.label}"
    create_identity(target, files, handle)
    listing = tmp_path / "delete.txt"
    listing.write_text(f"{handle}\n", encoding="utf-8")
    run = run_java("hdl-delete", handle, str(IDENTITY_INDEX), files.private, listing, config_dir=target.client_dir,
                   input_text=f"{files.passphrase}\n" if files.passphrase else None)
    assert run.returncode == 0, run.describe()
    assert run.stdout.splitlines()[-1] == f"deleted {handle}", run.describe()
    target.assert_not_found(handle)
