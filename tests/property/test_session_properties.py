"""Property tests of session crypto and the replay window: decryption and MAC checks never fail with
anything but their documented outcome, and no session counter is ever accepted twice."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hdlserver.auth.session_crypto import (
    ALG_AES,
    ALG_DES,
    ALG_DESEDE,
    SessionError,
    decrypt_message,
    encrypt_message,
    mac_credential,
    verify_mac,
)
from hdlserver.auth.sessions import ReplayError, Session
from hdlserver.wire.credential import HS_MAC, HS_SIGNED, Credential

ALGS = st.sampled_from([ALG_DES, ALG_DESEDE, ALG_AES])
BLOCK = {ALG_DES: 8, ALG_DESEDE: 8, ALG_AES: 16}
SESSION_VERSIONS = st.sampled_from([(2, 11), (2, 10), (2, 4), (2, 3), (2, 0)])
MAC_VERSIONS = st.sampled_from([(2, 11), (2, 10), (2, 8), (2, 7), (2, 6), (2, 5), (2, 4), (2, 1), (5, 0)])
KEYS = st.binary(min_size=32, max_size=32)
INT4 = st.integers(-(2**31), 2**31 - 1)
DIGEST_NAMES = st.one_of(
    st.sampled_from([b"HMAC-SHA256", b"HMAC-SHA1", b"hmac sha256", b"SHA1", b"SHA-1", b"SHA-256", b"SHA256",
                     b"MD5", b"\x00", b"\x01", b"\x02", b"\x03", b"\x12", b"\x13", b"\x22", b""]),
    st.binary(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(alg=ALGS, key=KEYS, data=st.binary(max_size=200), session_version=SESSION_VERSIONS)
def test_decrypt_random_bytes_only_raises_session_error(
        alg: int, key: bytes, data: bytes, session_version: tuple[int, int]) -> None:
    try:
        plaintext = decrypt_message(alg, key, data, session_version)
    except SessionError as err:
        assert err.response_code == 501
    else:
        assert len(plaintext) < len(data)


@settings(max_examples=150, deadline=None)
@given(alg=ALGS, key=KEYS, plaintext=st.binary(max_size=300), session_version=SESSION_VERSIONS,
       iv_seed=st.binary(min_size=16, max_size=16))
def test_encrypt_decrypt_round_trip(alg: int, key: bytes, plaintext: bytes, session_version: tuple[int, int],
                                   iv_seed: bytes) -> None:
    uses_iv = session_version >= (2, 4)
    iv = iv_seed[: BLOCK[alg]] if uses_iv else None
    data = encrypt_message(alg, key, plaintext, session_version, iv=iv)
    assert len(data) % BLOCK[alg] == 0
    if iv is not None:
        assert data.startswith(iv)
    assert decrypt_message(alg, key, data, session_version) == plaintext


@settings(max_examples=300, deadline=None)
@given(key=KEYS, header_body=st.binary(max_size=100), version=MAC_VERSIONS, suggested=MAC_VERSIONS,
       session_id=INT4, request_id=INT4, counter=INT4,
       cred_type=st.sampled_from([HS_MAC, HS_SIGNED, b"", b"hs_mac"]), digest_alg=DIGEST_NAMES,
       signature=st.binary(max_size=40))
def test_verify_mac_never_raises_on_random_credentials(
        key: bytes, header_body: bytes, version: tuple[int, int], suggested: tuple[int, int], session_id: int,
        request_id: int, counter: int, cred_type: bytes, digest_alg: bytes, signature: bytes) -> None:
    cred = Credential(signer_index=counter, type=cred_type, digest_alg=digest_alg, signature=signature)
    assert verify_mac(key, cred, header_body, version, suggested, session_id, request_id) in (True, False)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=8, max_size=32), header_body=st.binary(max_size=100), version=MAC_VERSIONS,
       suggested=MAC_VERSIONS, session_id=INT4, request_id=INT4, counter=INT4)
def test_mac_credentials_verify(key: bytes, header_body: bytes, version: tuple[int, int],
                                suggested: tuple[int, int], session_id: int, request_id: int,
                                counter: int) -> None:
    cred = mac_credential(key, header_body, version, suggested, session_id, request_id, counter)
    assert cred.type == HS_MAC and cred.signer_index == counter
    assert verify_mac(key, cred, header_body, version, suggested, session_id, request_id)
    assert not verify_mac(key, cred, header_body + b"x", version, suggested, session_id, request_id)


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(-5, 600), st.booleans()), max_size=700))
def test_no_counter_is_accepted_twice(ops: list[tuple[int, bool]]) -> None:
    session = Session(session_id=1, key=bytes(32), algorithm=ALG_AES, identity_handle=b"0.NA/X",
                      identity_index=300, mode=4, version=(2, 11), timeout_seconds=60.0, last_used=0.0)
    recorded: set[int] = set()
    for counter, unique in ops:
        try:
            session.check_and_record_counter(counter, unique=unique)
        except ReplayError:
            assert unique and counter != 0
            continue
        if unique and counter != 0:
            assert counter not in recorded
        recorded.add(counter)
