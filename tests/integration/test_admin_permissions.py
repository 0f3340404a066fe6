"""Every admin op and every HS_ADMIN permission bit, granted and denied, on one real server process.

The server runs with ``server_admin_full_access = no``, so only HS_ADMIN records (and, for ops 300-302, the
``server_admins`` list) decide. Identities: secret key, RSA and DSA public keys (the Java-made keys of
../shared/vectors/keys), members of an HS_VLIST group that contains a cycle, and one pair of secret-key
identities per permission bit: ``1000+b:TEST/bits`` holds only bit b, ``2000+b:TEST/bits`` every bit but b.
Each refusal is checked for its response code, an unchanged record, no new transaction-log entry, and a
server that still answers; each success for exactly one new transaction-log entry and an access-log line
naming the identity (``adm=index:handle``).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.admin import ADMIN_FLAGS, AdminClient, Identity, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message
from hdlserver.store.lmdb_store import LmdbStore, open_store
from hdlserver.wire.bodies import ChallengeAnswerRequest, CreateHandleRequest, ResolutionRequest
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.credential import HS_SIGNED, signed_prefix
from hdlserver.wire.envelope import decode_envelope
from hdlserver.wire.valuedata import (
    ALL_PERMISSIONS,
    PERM_ADD_ADMIN,
    PERM_ADD_DERIVED_PREFIX,
    PERM_ADD_HANDLE,
    PERM_ADD_VALUE,
    PERM_DELETE_DERIVED_PREFIX,
    PERM_DELETE_HANDLE,
    PERM_LIST_HANDLES,
    PERM_MODIFY_ADMIN,
    PERM_MODIFY_VALUE,
    PERM_READ_VALUE,
    PERM_REMOVE_ADMIN,
    PERM_REMOVE_VALUE,
    AdminRecord,
    encode_admin,
    encode_vlist,
)
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, HandleValue, ValueReference

KEYS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "keys"
PREFIX = b"0.NA/PERM"
BITS = b"TEST/bits"
GROUP = b"TEST/admins"
SUBGROUP = b"TEST/subgroup"
ADMIN_READ_ONLY = PERM_ADMIN_READ | PERM_ADMIN_WRITE  # "1100": not publicly readable
# Bits checked against the prefix handle 0.NA/PERM; the others against the handle itself.
PREFIX_BITS = (PERM_ADD_HANDLE, PERM_ADD_DERIVED_PREFIX, PERM_LIST_HANDLES)
HANDLE_BITS = (PERM_DELETE_HANDLE, PERM_DELETE_DERIVED_PREFIX, PERM_MODIFY_VALUE, PERM_REMOVE_VALUE, PERM_ADD_VALUE,
               PERM_MODIFY_ADMIN, PERM_REMOVE_ADMIN, PERM_ADD_ADMIN, PERM_READ_VALUE)

pytestmark = pytest.mark.skipif(not KEYS.is_dir(), reason=f"key vectors not found at {KEYS}")


def bit_number(bit: int) -> int:
    return bit.bit_length() - 1


def grant_index(bit: int) -> int:
    return 1000 + bit_number(bit)


def deny_index(bit: int) -> int:
    return 2000 + bit_number(bit)


def admin(index: int, perms: int, handle: bytes, admin_index: int) -> HandleValue:
    return HandleValue(index, b"HS_ADMIN", encode_admin(AdminRecord(perms, handle, admin_index)))


def seckey(index: int, secret: bytes) -> HandleValue:
    return HandleValue(index, b"HS_SECKEY", secret, permissions=ADMIN_READ_ONLY)


def url(index: int, text: str, permissions: int | None = None) -> HandleValue:
    if permissions is None:
        return HandleValue(index, b"URL", text.encode())
    return HandleValue(index, b"URL", text.encode(), permissions=permissions)


def private_key(name: str) -> keys.PrivateKey:
    return keys.load_private_key(KEYS / f"{name}_priv_plain.bin")


def pubkey_value(index: int, name: str) -> HandleValue:
    return HandleValue(index, b"HS_PUBKEY", (KEYS / f"{name}_pub.bin").read_bytes())


SEC = SecretKeyIdentity(b"TEST/sec-admin", 300, b"sec-pass")
MEMBER = SecretKeyIdentity(b"TEST/member", 300, b"member-pass")
OUTSIDER = SecretKeyIdentity(b"TEST/outsider", 300, b"outsider-pass")
ANY_INDEX = SecretKeyIdentity(b"TEST/any-index", 300, b"any-pass")  # named by an HS_ADMIN with index 0


def bit_identity(bit: int, granted: bool) -> SecretKeyIdentity:
    index = grant_index(bit) if granted else deny_index(bit)
    return SecretKeyIdentity(BITS, index, f"pass-{index}".encode())


def pubkey_identities() -> dict[str, PublicKeyIdentity]:
    return {"rsa": PublicKeyIdentity(b"TEST/rsa-admin", 300, private_key("rsa2048")),
            "dsa": PublicKeyIdentity(b"TEST/dsa-admin", 300, private_key("dsa1024")),
            "group-dsa": PublicKeyIdentity(b"TEST/dsa-member", 300, private_key("dsa1024"))}


def bit_admins(bits: tuple[int, ...]) -> list[HandleValue]:
    """The grant/deny HS_ADMIN pair of each bit, pointing at the per-bit identities of TEST/bits."""
    values = []
    for bit in bits:
        values.append(admin(100 + bit_number(bit), bit, BITS, grant_index(bit)))
        values.append(admin(120 + bit_number(bit), ALL_PERMISSIONS & ~bit, BITS, deny_index(bit)))
    return values


def target_values() -> list[HandleValue]:
    """The record of each handle the per-bit tests change."""
    return [*bit_admins(HANDLE_BITS), admin(150, ALL_PERMISSIONS, b"TEST/nobody", 300),
            url(1, "https://example.org/one"), url(2, "https://example.org/two"),
            url(3, "https://example.org/secret", ADMIN_READ_ONLY)]


def seed(store: LmdbStore) -> None:
    everyone = [SEC, MEMBER, OUTSIDER]
    records: list[tuple[bytes, list[HandleValue]]] = [
        (PREFIX, [admin(200, ALL_PERMISSIONS, SEC.handle, 300), admin(201, ALL_PERMISSIONS, b"TEST/rsa-admin", 300),
                  admin(202, ALL_PERMISSIONS, b"TEST/dsa-admin", 300), admin(203, ALL_PERMISSIONS, GROUP, 200),
                  *bit_admins(PREFIX_BITS)]),
        (BITS, [seckey(index(bit), f"pass-{index(bit)}".encode())
                for bit in PREFIX_BITS + HANDLE_BITS for index in (grant_index, deny_index)]),
        (b"TEST/rsa-admin", [pubkey_value(300, "rsa2048")]),
        (b"TEST/dsa-admin", [pubkey_value(300, "dsa1024")]),
        (b"TEST/dsa-member", [pubkey_value(300, "dsa1024")]),
        # The group holds a member and a subgroup; the subgroup holds a member and the group again (a cycle).
        (GROUP, [HandleValue(200, b"HS_VLIST", encode_vlist((ValueReference(MEMBER.handle, 300),
                                                              ValueReference(SUBGROUP, 200))))]),
        (SUBGROUP, [HandleValue(200, b"HS_VLIST", encode_vlist((ValueReference(b"TEST/dsa-member", 300),
                                                                 ValueReference(GROUP, 200))))]),
        *((ident.handle, [seckey(ident.index, ident.secret)]) for ident in everyone),
    ]
    records += [(f"PERM/bit-{bit_number(bit)}".encode(), target_values()) for bit in HANDLE_BITS]
    records += [(ANY_INDEX.handle, [seckey(ANY_INDEX.index, ANY_INDEX.secret)]),
                (b"PERM/index-0", [admin(100, ALL_PERMISSIONS, ANY_INDEX.handle, 0), url(1, "https://example.org/0")])]
    store.create_handles(records, log=False)
    store.home_prefix(PREFIX, log=False)


@dataclass
class Server:
    process: ServerProcess
    store: LmdbStore  # a read-only view of the running server's store, for transaction-log counts

    @property
    def address(self) -> tuple[str, int]:
        return self.process.address

    def client(self, identity: Identity) -> AdminClient:
        return AdminClient(self.address, identity, timeout=15)

    def values(self, handle: bytes) -> tuple[HandleValue, ...] | None:
        return self.store.get_values(handle)

    def access_log(self) -> str:
        path = self.process.directory / "logs" / "access.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("permissions") / "srv"
    port = setup_server_dir(directory)
    config = directory / "config.dct"
    text = config.read_text()
    text = text.replace('"server_admin_full_access" = "yes"', '"server_admin_full_access" = "no"')
    text = text.replace('"301:0.NA/TEST"', '"301:0.NA/TEST"\n      "300:TEST/sec-admin"\n      "300:TEST/rsa-admin"\n'
                        '      "300:TEST/dsa-admin"\n      "200:TEST/admins"')
    config.write_text(text)
    store = open_store(directory, case_sensitive=False, sync=False)
    try:
        seed(store)
    finally:
        store.close()
    proc = start_server(directory, port)
    view = open_store(directory, case_sensitive=False, readonly=True)
    try:
        yield Server(proc, view)
    finally:
        view.close()
        proc.stop()


def assert_serving(server: Server) -> None:
    assert Resolver([server.address], udp=False).resolve("TEST/hello").values


def refused(server: Server, identity: Identity, action: Callable[[AdminClient], object], handle: bytes,
            code: int = ResponseCode.INVALID_ADMIN) -> None:
    """The action fails with ``code``; the record and the transaction log stay as they were."""
    before, txn = server.values(handle), server.store.last_txn_id()
    with server.client(identity) as client, pytest.raises(HandleResponseError) as err:
        action(client)
    assert err.value.response_code == code, err.value
    assert server.values(handle) == before
    assert server.store.last_txn_id() == txn
    assert_serving(server)


def wait_for_access_line(server: Server, pattern: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = re.search(pattern, server.access_log(), re.MULTILINE)
        if found:
            return found.group(0)
        time.sleep(0.05)
    raise AssertionError(f"no access-log line matches {pattern!r}:\n{server.access_log()[-2000:]}")


def succeeded(server: Server, identity: Identity, action: Callable[[AdminClient], object], opcode: int,
              txn_records: int = 1) -> object:
    """The action succeeds, appends ``txn_records`` transaction-log records and logs ``adm=`` for the op."""
    txn = server.store.last_txn_id()
    with server.client(identity) as client:
        result = action(client)
    assert server.store.last_txn_id() == txn + txn_records
    adm = re.escape(f"adm={identity.index}:{identity.handle.decode()}")
    wait_for_access_line(server, rf'^\S+ TCP:HDL\(\d+\.\d+\) "[^"]+" {opcode} 1 \d+ms {adm} ')
    return result


def value_at(server: Server, handle: bytes, index: int) -> HandleValue | None:
    return next((v for v in server.values(handle) or () if v.index == index), None)


# ---------------------------------------------------------------------------------------------------------
# Every op with a secret key, an RSA key, a DSA key and a group member


IDENTITY_KINDS = ("seckey", "rsa", "dsa", "group-seckey", "group-dsa")


def identity_of(kind: str) -> Identity:
    if kind == "seckey":
        return SEC
    if kind == "group-seckey":
        return MEMBER
    return pubkey_identities()[kind]


@pytest.mark.parametrize("kind", IDENTITY_KINDS)
def test_every_op_with_identity(server: Server, kind: str) -> None:
    ident = identity_of(kind)
    handle = f"PERM/ops-{kind}".encode()
    own = admin(100, ALL_PERMISSIONS, GROUP, 200) if kind.startswith("group") else admin(
        100, ALL_PERMISSIONS, ident.handle, ident.index)
    succeeded(server, ident, lambda c: c.create_handle(handle, [own, url(1, "https://example.org/a")]),
              OpCode.CREATE_HANDLE)
    succeeded(server, ident, lambda c: c.add_values(handle, [url(2, "https://example.org/b")]), OpCode.ADD_VALUE)
    succeeded(server, ident, lambda c: c.modify_values(handle, [url(1, "https://example.org/c")]),
              OpCode.MODIFY_VALUE)
    succeeded(server, ident, lambda c: c.remove_values(handle, [2]), OpCode.REMOVE_VALUE)
    assert sorted((v.index, v.data) for v in server.values(handle)) == [(1, b"https://example.org/c"), (100, own.data)]
    listed = succeeded(server, ident, lambda c: c.list_handles(PREFIX), OpCode.LIST_HANDLES, txn_records=0)
    assert handle.upper() in listed  # type: ignore[operator]
    succeeded(server, ident, lambda c: c.delete_handle(handle), OpCode.DELETE_HANDLE)
    assert server.values(handle) is None
    prefix = f"HOMED-{kind}".encode()
    succeeded(server, ident, lambda c: c.home_prefix(prefix), OpCode.HOME_NA)
    homed = succeeded(server, ident, lambda c: c.list_homed_prefixes(), OpCode.LIST_HOMED_NAS, txn_records=0)
    assert b"0.NA/" + prefix.upper() in [h.upper() for h in homed]  # type: ignore[union-attr]
    succeeded(server, ident, lambda c: c.unhome_prefix(prefix), OpCode.UNHOME_NA)
    assert not server.store.is_homed(b"0.NA/" + prefix)


def test_group_outsider_is_refused_for_every_op(server: Server) -> None:
    """OUTSIDER is in no group: the search walks the cyclic group to its end and answers 400."""
    target = b"PERM/bit-1"
    refused(server, OUTSIDER, lambda c: c.create_handle(b"PERM/outsider", [url(1, "x")]), b"PERM/outsider")
    refused(server, OUTSIDER, lambda c: c.add_values(target, [url(9, "x")]), target)
    refused(server, OUTSIDER, lambda c: c.modify_values(target, [url(1, "x")]), target)
    refused(server, OUTSIDER, lambda c: c.remove_values(target, [1]), target)
    refused(server, OUTSIDER, lambda c: c.delete_handle(target), target)
    refused(server, OUTSIDER, lambda c: c.list_handles(PREFIX), target)
    refused(server, OUTSIDER, lambda c: c.home_prefix(b"OUTSIDER"), target)
    refused(server, OUTSIDER, lambda c: c.unhome_prefix(PREFIX), PREFIX)
    refused(server, OUTSIDER, lambda c: c.list_homed_prefixes(), target)
    assert server.store.is_homed(PREFIX)


# ---------------------------------------------------------------------------------------------------------
# Every permission bit, granted and denied


@dataclass(frozen=True)
class BitCase:
    bit: int
    handle: bytes  # the record that must not change when the bit is missing
    opcode: int
    action: Callable[[AdminClient, bool], object]  # (client, granted): distinct targets for the two runs
    check: Callable[[Server, bool], None]  # after a granted run


def handle_target(bit: int) -> bytes:
    return f"PERM/bit-{bit_number(bit)}".encode()


def authenticated_read(client: AdminClient, handle: bytes) -> list[HandleValue]:
    result = client.request(OpCode.RESOLUTION, ResolutionRequest(handle, (3,), ()), OpFlag.REC)
    return list(result.messages[0].body.values)  # type: ignore[attr-defined]


def _created(name: str) -> Callable[[Server, bool], None]:
    return lambda server, _granted: None if server.values(name.encode()) else pytest.fail(f"{name} not created")


BIT_CASES = [
    BitCase(PERM_ADD_HANDLE, b"PERM/added", OpCode.CREATE_HANDLE,
            lambda c, g: c.create_handle(b"PERM/added", [url(1, "https://example.org/new")]),
            _created("PERM/added")),
    BitCase(PERM_ADD_DERIVED_PREFIX, b"0.NA/PERM.SUB", OpCode.CREATE_HANDLE,
            lambda c, g: c.create_handle(b"0.NA/PERM.SUB", [admin(100, ALL_PERMISSIONS, SEC.handle, 300)]),
            _created("0.NA/PERM.SUB")),
    BitCase(PERM_LIST_HANDLES, PREFIX, OpCode.LIST_HANDLES, lambda c, g: c.list_handles(PREFIX),
            lambda s, g: None),
    BitCase(PERM_DELETE_HANDLE, handle_target(PERM_DELETE_HANDLE), OpCode.DELETE_HANDLE,
            lambda c, g: c.delete_handle(handle_target(PERM_DELETE_HANDLE)),
            lambda s, g: None if s.values(handle_target(PERM_DELETE_HANDLE)) is None else pytest.fail("kept")),
    BitCase(PERM_ADD_VALUE, handle_target(PERM_ADD_VALUE), OpCode.ADD_VALUE,
            lambda c, g: c.add_values(handle_target(PERM_ADD_VALUE), [url(7, "https://example.org/added")]),
            lambda s, g: None if value_at(s, handle_target(PERM_ADD_VALUE), 7) else pytest.fail("not added")),
    BitCase(PERM_MODIFY_VALUE, handle_target(PERM_MODIFY_VALUE), OpCode.MODIFY_VALUE,
            lambda c, g: c.modify_values(handle_target(PERM_MODIFY_VALUE), [url(1, "https://example.org/mod")]),
            lambda s, g: None if value_at(s, handle_target(PERM_MODIFY_VALUE), 1).data.endswith(b"/mod")
            else pytest.fail("not modified")),
    BitCase(PERM_REMOVE_VALUE, handle_target(PERM_REMOVE_VALUE), OpCode.REMOVE_VALUE,
            lambda c, g: c.remove_values(handle_target(PERM_REMOVE_VALUE), [2]),
            lambda s, g: None if value_at(s, handle_target(PERM_REMOVE_VALUE), 2) is None else pytest.fail("kept")),
    BitCase(PERM_ADD_ADMIN, handle_target(PERM_ADD_ADMIN), OpCode.ADD_VALUE,
            lambda c, g: c.add_values(handle_target(PERM_ADD_ADMIN), [admin(160, 1, b"TEST/new-admin", 300)]),
            lambda s, g: None if value_at(s, handle_target(PERM_ADD_ADMIN), 160) else pytest.fail("not added")),
    BitCase(PERM_MODIFY_ADMIN, handle_target(PERM_MODIFY_ADMIN), OpCode.MODIFY_VALUE,
            lambda c, g: c.modify_values(handle_target(PERM_MODIFY_ADMIN), [admin(150, 3, b"TEST/nobody", 300)]),
            lambda s, g: None if value_at(s, handle_target(PERM_MODIFY_ADMIN), 150).data == encode_admin(
                AdminRecord(3, b"TEST/nobody", 300)) else pytest.fail("not modified")),
    BitCase(PERM_REMOVE_ADMIN, handle_target(PERM_REMOVE_ADMIN), OpCode.REMOVE_VALUE,
            lambda c, g: c.remove_values(handle_target(PERM_REMOVE_ADMIN), [150]),
            lambda s, g: None if value_at(s, handle_target(PERM_REMOVE_ADMIN), 150) is None
            else pytest.fail("kept")),
    BitCase(PERM_READ_VALUE, handle_target(PERM_READ_VALUE), OpCode.RESOLUTION,
            lambda c, g: authenticated_read(c, handle_target(PERM_READ_VALUE)), lambda s, g: None),
]


@pytest.mark.parametrize("case", BIT_CASES, ids=lambda c: f"bit{bit_number(c.bit)}")
def test_permission_bit_denied_then_granted(server: Server, case: BitCase) -> None:
    refused(server, bit_identity(case.bit, granted=False), lambda c: case.action(c, False), case.handle)
    changes = 0 if case.opcode in (OpCode.LIST_HANDLES, OpCode.RESOLUTION) else 1
    result = succeeded(server, bit_identity(case.bit, granted=True), lambda c: case.action(c, True), case.opcode,
                       txn_records=changes)
    case.check(server, True)
    if case.bit == PERM_READ_VALUE:
        assert [v.data for v in result] == [b"https://example.org/secret"]  # type: ignore[union-attr]
    if case.bit == PERM_LIST_HANDLES:
        assert b"PERM/BIT-4" in result  # type: ignore[operator]


def test_delete_derived_prefix_bit_is_never_checked(server: Server) -> None:
    """As in Java 9.2 (values.md 2.2): deleting needs DELETE_HANDLE; DELETE_DERIVED_PREFIX alone grants nothing."""
    target = handle_target(PERM_DELETE_DERIVED_PREFIX)
    refused(server, bit_identity(PERM_DELETE_DERIVED_PREFIX, granted=True), lambda c: c.delete_handle(target), target)
    succeeded(server, bit_identity(PERM_DELETE_DERIVED_PREFIX, granted=False), lambda c: c.delete_handle(target),
              OpCode.DELETE_HANDLE)
    assert server.values(target) is None


def test_bits_of_one_request_must_be_in_one_record(server: Server) -> None:
    """Adding a URL and an HS_ADMIN needs ADD_VALUE and ADD_ADMIN in a single record; two records do not add up."""
    target = handle_target(PERM_ADD_VALUE)
    both = [url(8, "https://example.org/both"), admin(161, 1, b"TEST/x", 300)]
    refused(server, bit_identity(PERM_ADD_VALUE, granted=True), lambda c: c.add_values(target, both), target)


def test_read_only_value_cannot_be_modified(server: Server) -> None:
    """A value without admin-write is refused with 401 even for a full admin (server.md, modify)."""
    handle = b"PERM/read-only"
    with server.client(SEC) as client:
        client.create_handle(handle, [admin(100, ALL_PERMISSIONS, SEC.handle, 300),
                                      url(1, "https://example.org/ro", permissions=0x02)])
    refused(server, SEC, lambda c: c.modify_values(handle, [url(1, "https://example.org/changed")]), handle,
            code=ResponseCode.INSUFFICIENT_PERMISSIONS)


def test_unreadable_value_is_401_for_anyone(server: Server) -> None:
    handle = b"PERM/unreadable"
    with server.client(SEC) as client:
        client.create_handle(handle, [admin(100, ALL_PERMISSIONS, SEC.handle, 300),
                                      HandleValue(3, b"URL", b"https://example.org/hidden", permissions=0)])
        with pytest.raises(HandleResponseError) as err:
            authenticated_read(client, handle)
    assert err.value.response_code == ResponseCode.INSUFFICIENT_PERMISSIONS


# ---------------------------------------------------------------------------------------------------------
# Identity index 0 (auth.md 6.6) and certified answers


def test_pubkey_identity_index_0_is_allowed_through_the_key_that_verified(server: Server) -> None:
    """HS_PUBKEY 0:TEST/rsa-admin: the key at 300 verifies and 300:TEST/rsa-admin is an admin of 0.NA/PERM."""
    ident = PublicKeyIdentity(b"TEST/rsa-admin", 0, private_key("rsa2048"))
    succeeded(server, ident, lambda c: c.create_handle(b"PERM/by-index-0", [url(1, "https://example.org/i0")]),
              OpCode.CREATE_HANDLE)


def test_seckey_identity_index_0_has_no_such_rule(server: Server) -> None:
    ident = SecretKeyIdentity(SEC.handle, 0, SEC.secret)
    refused(server, ident, lambda c: c.create_handle(b"PERM/seckey-index-0", [url(1, "x")]), b"PERM/seckey-index-0")


@pytest.mark.parametrize("index", [300, 0])
def test_admin_entry_with_index_0_names_every_index(server: Server, index: int) -> None:
    """An HS_ADMIN naming 0:TEST/any-index matches 300:TEST/any-index, and 0:TEST/any-index itself."""
    ident = SecretKeyIdentity(ANY_INDEX.handle, index, ANY_INDEX.secret)
    succeeded(server, ident, lambda c: c.add_values(b"PERM/index-0", [url(10 + index, "https://example.org/any")]),
              OpCode.ADD_VALUE)


def test_certified_admin_answer_is_signed_with_the_server_key(server: Server) -> None:
    """CT on an admin request: the final answer carries an HS_SIGNED credential over the request digest that
    verifies with the server's public key (the one in its HS_SITE), as the Java client checks it."""
    flags = ADMIN_FLAGS | OpFlag.CT | OpFlag.RD
    request = build_request(OpCode.CREATE_HANDLE, CreateHandleRequest(b"PERM/certified", (url(1, "https://x/"),)),
                            flags)
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(request)
        raw = read_tcp_message(sock)
        challenge = decode_answer(raw)
        env = decode_envelope(raw)
        signed = SEC.answer(challenge.body.nonce, challenge.request_digest[1],  # type: ignore[attr-defined,index]
                            (env.major, env.minor), (env.suggested_major, env.suggested_minor))
        answer = bytearray(build_request(OpCode.CHALLENGE_RESPONSE,
                                         ChallengeAnswerRequest(SEC.auth_type, SEC.handle, SEC.index, signed), flags))
        answer[4:8] = raw[4:8]
        sock.sendall(bytes(answer))
        final_raw = read_tcp_message(sock)
    final, final_env = decode_answer(final_raw), decode_envelope(final_raw)
    assert final.header.response_code == ResponseCode.SUCCESS
    assert final.header.flags & OpFlag.CT
    cred = final.credential
    assert cred is not None and cred.type == HS_SIGNED
    server_key = keys.load_public_key(server.process.directory / "pubkey.bin")
    prefix = signed_prefix(final_env.version, final_env.suggested, final_env.session_id, final_env.request_id,
                           cred.signer_index)
    assert keys.verify(server_key, cred.signature, prefix + final.header_body, cred.digest_alg)
    assert not keys.verify(server_key, cred.signature, prefix + final.header_body + b"x", cred.digest_alg)
