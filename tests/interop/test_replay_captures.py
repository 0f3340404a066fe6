"""Replay recorded Java client traffic (../shared/vectors/captures) against hdlserver.

Every unencrypted client-to-server RESOLUTION and GET_SITE_INFO message recorded between the real Java
tools and the real Java server is sent, byte for byte and over the transport it was recorded on, to an
hdlserver that holds what the Java server held: the Java server's own site record and key
(inputs/server-siteinfo.json, inputs/server_privkey.bin), 0.NA/TEST from inputs/bootstrap.json, and
TEST/vec-1 as the recorded answers show it (plus its admin-only value 4 from inputs/batch-seckey.txt).
Our answer must equal the recorded Java answer in everything but the expiration time and the value
timestamps.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from java import comparable_answer, exchange
from servers import ServerProcess, run_cli, setup_server_dir, start_server

from hdlserver.jsonform.values_json import value_to_json
from hdlserver.wire.bodies import ResolutionResponse, SiteInfoResponse
from hdlserver.wire.codes import OpCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, Envelope, decode_envelope
from hdlserver.wire.message import Message, decode_message
from hdlserver.wire.values import HandleValue

pytestmark = pytest.mark.interop

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "captures"
INPUTS = CAPTURES / "inputs"
REPLAYED_OPS = {OpCode.RESOLUTION, OpCode.GET_SITE_INFO}
VECTOR_SECRET = "vector-secret"


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the Java server's answer to it."""

    scenario: str
    transport: str
    request: bytes  # envelope + message, as sent
    answer: bytes

    @property
    def name(self) -> str:
        return f"{self.scenario}-{self.transport}"


def decode(raw: bytes) -> tuple[Envelope, Message]:
    env = decode_envelope(raw)
    return env, decode_message(raw[ENVELOPE_SIZE:], (env.major, env.minor))


def recorded_exchanges() -> list[Exchange]:
    """Each unencrypted c2s RESOLUTION / GET_SITE_INFO message with the s2c answer of the same request id."""
    path = CAPTURES / "messages.jsonl"
    if not path.is_file():
        return []
    messages = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = []
    for m in messages:
        if m["dir"] != "c2s" or m["envelope"]["EC"] or m["message"].get("opCode") not in REPLAYED_OPS:
            continue
        answers = [a for a in messages if a["dir"] == "s2c" and a["scenario"] == m["scenario"]
                   and a["conn"] == m["conn"] and a["envelope"]["requestId"] == m["envelope"]["requestId"]]
        assert len(answers) == 1, f"no single recorded answer to {m['scenario']} seq {m['first_seq']}"
        found.append(Exchange(m["scenario"], m["transport"], bytes.fromhex(m["message_hex"]),
                              bytes.fromhex(answers[0]["message_hex"])))
    return found


EXCHANGES = recorded_exchanges()


def recorded_values(handle: bytes) -> dict[int, HandleValue]:
    """Every value of ``handle`` that some recorded answer shows."""
    values: dict[int, HandleValue] = {}
    for ex in EXCHANGES:
        _, msg = decode(ex.answer)
        if isinstance(msg.body, ResolutionResponse) and msg.body.handle.upper() == handle.upper():
            values.update((v.index, v) for v in msg.body.values)
    return values


def vec1_record() -> dict[str, Any]:
    """TEST/vec-1 as the Java server held it: the recorded values (timestamps included) and the admin-only
    value 4 that the answers leave out, as batch-seckey.txt added it."""
    values = [value_to_json(v) for _, v in sorted(recorded_values(b"TEST/vec-1").items())]
    assert [v["index"] for v in values] == [1, 2, 100]
    batch = (INPUTS / "batch-seckey.txt").read_text(encoding="utf-8")
    assert "4 SECRET 86400 1100 UTF8 admin-only value" in batch
    values.append({"index": 4, "type": "SECRET", "data": {"format": "string", "value": "admin-only value"},
                   "permissions": "1100"})
    return {"handle": "TEST/vec-1", "values": values}


@pytest.fixture(scope="module")
def capture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """hdlserver dressed as the recorded Java server: its site record, its key, its handles."""
    if not EXCHANGES:
        pytest.skip(f"recorded traffic not available at {CAPTURES}")
    directory = tmp_path_factory.mktemp("replay") / "srv"
    port = setup_server_dir(directory, prefix="TEST", secret=VECTOR_SECRET)
    shutil.copyfile(INPUTS / "server-siteinfo.json", directory / "siteinfo.json")
    shutil.copyfile(INPUTS / "server_privkey.bin", directory / "privkey.bin")
    shutil.copyfile(INPUTS / "server_pubkey.bin", directory / "pubkey.bin")
    bootstrap = json.loads((INPUTS / "bootstrap.json").read_text(encoding="utf-8"))
    records = [bootstrap["handleRecords"]["0.NA/TEST"], vec1_record()]
    records_file = directory.parent / "records.json"
    records_file.write_text(json.dumps(records, indent=1), encoding="utf-8")
    run_cli("hdlserver.cli.loadjson", directory, records_file, "--overwrite")
    server = start_server(directory, port)
    yield server
    server.stop()


def test_captures_hold_the_expected_exchanges() -> None:
    if not EXCHANGES:
        pytest.skip(f"recorded traffic not available at {CAPTURES}")
    names = sorted(ex.name for ex in EXCHANGES)
    assert names == ["get-site-info-tcp", "home-na-tcp", "missing-handle-udp-udp", "resolve-indexfilter-tcp-tcp",
                     "resolve-tcp-tcp", "resolve-typefilter-udp-udp", "resolve-udp-udp"]


# Without recordings, one skipped case that says where they were looked for (rather than pytest's
# "got empty parameter set").
RECORDED = EXCHANGES or [pytest.param(None, marks=pytest.mark.skip(reason=f"recorded traffic not available at "
                                                                         f"{CAPTURES}"), id="no-captures")]


@pytest.mark.parametrize("recorded", RECORDED, ids=[ex.name for ex in EXCHANGES] or None)
def test_replayed_request_gets_the_java_answer(capture_server: ServerProcess, recorded: Exchange) -> None:
    java_env, java_msg = decode(recorded.answer)
    ours_env, ours_msg = exchange(capture_server.address, recorded.request, recorded.transport)
    assert comparable_answer(ours_env, ours_msg) == comparable_answer(java_env, java_msg)
    if isinstance(java_msg.body, SiteInfoResponse):
        # Same site record, same request: the whole answer is Java's, bar the expiration time.
        assert ours_msg.header_body[:16] + ours_msg.header_body[20:] == \
            java_msg.header_body[:16] + java_msg.header_body[20:]
    if isinstance(java_msg.body, ResolutionResponse):
        # Values come back in Java's (stored) order, with the timestamps they were stored with.
        assert ours_msg.body == java_msg.body
