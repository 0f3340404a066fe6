"""hdl-export / hdl-import: exact JSON-lines round trips, all-or-nothing validation with line numbers,
batches, overwrite rules, progress only on a terminal."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdlserver.auth import keys
from hdlserver.cli import export, import_handles
from hdlserver.cli.dblist import open_server_store
from hdlserver.config.dct import format_dct
from hdlserver.setup import SetupOptions, build_site
from hdlserver.store.lmdb_store import LmdbStore
from hdlserver.wire.buffer import Writer
from hdlserver.wire.pubkey import java_bigint_bytes
from hdlserver.wire.site import encode_site
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin, encode_vlist
from hdlserver.wire.values import TTL_ABSOLUTE, HandleValue, ValueReference

NOW = 1_700_000_000


def make_server_dir(directory: Path, *, partitions: int = 3, case_sensitive: bool = False) -> Path:
    """A directory with just the config.dct the offline tools read (store location and case folding)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"server_config": {"this_server_id": "1", "case_sensitive": "yes" if case_sensitive else "no",
                                "storage_partitions": str(partitions)}}
    (directory / "config.dct").write_text(format_dct(config), encoding="utf-8")
    return directory


def open_dir_store(directory: Path) -> LmdbStore:
    """The store as the tools open it (partitions and case folding from config.dct)."""
    return open_server_store(directory, readonly=False, create=True)


def non_canonical_rsa_key() -> bytes:
    """An RSA HS_PUBKEY with a redundant leading zero in its exponent: valid, but not what an encoder
    writes, so the JSON "key" form would not give these bytes back."""
    public = keys.generate_key_pair("RSA", 1024).public_key().public_numbers()
    w = Writer().put_byte_array(b"RSA_PUB_KEY").put_int2(0)
    w.put_byte_array(b"\x00\x00" + public.e.to_bytes(3, "big")).put_byte_array(java_bigint_bytes(public.n))
    return w.put_int4(0).getvalue()


def sample_records() -> dict[bytes, tuple[HandleValue, ...]]:
    admin = encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300))
    rsa_public = keys.public_key_to_bytes(keys.generate_key_pair("RSA", 1024).public_key())
    site = encode_site(build_site(SetupOptions(server_dir=Path("."), public_address="192.0.2.1"), rsa_public))
    return {
        b"0.NA/TEST": (
            HandleValue(100, b"HS_ADMIN", admin, timestamp=NOW),
            HandleValue(300, b"HS_SECKEY", b"secret", permissions=0x0C, timestamp=NOW),
            HandleValue(301, b"HS_PUBKEY", rsa_public, timestamp=NOW),
            HandleValue(302, b"HS_PUBKEY", non_canonical_rsa_key(), timestamp=NOW),
            HandleValue(400, b"HS_SITE", site, timestamp=NOW),
        ),
        b"TEST/ALL-KINDS": (
            HandleValue(1, b"URL", "https://example.org/ünïcode".encode(), timestamp=NOW),
            HandleValue(2, b"BINARY", bytes(range(256)), timestamp=NOW),
            HandleValue(3, b"NO-TIMESTAMP", b"zero timestamp", timestamp=0),
            HandleValue(4, b"EXPIRES", b"x", ttl_type=TTL_ABSOLUTE, ttl=NOW + 3600, timestamp=NOW),
            HandleValue(5, b"HS_VLIST", encode_vlist([ValueReference(b"0.NA/TEST", 300)]), timestamp=NOW),
            HandleValue(6, b"REFS", b"", references=(ValueReference(b"TEST/other", 1),), timestamp=NOW),
            HandleValue(7, b"PRIVATE", b"p", permissions=0x0E, ttl=-1, timestamp=NOW),
            HandleValue(8, b"EMPTY", b"", timestamp=NOW),
        ),
        b"TEST/EMPTY-RECORD": (),
    }


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Path, dict[bytes, tuple[HandleValue, ...]]]]:
    directory = make_server_dir(tmp_path / "source")
    records = sample_records()
    with open_dir_store(directory) as store:
        store.create_handles(records.items())
    yield directory, records


def stored(directory: Path) -> dict[bytes, tuple[HandleValue, ...]]:
    with open_dir_store(directory) as store:
        return {r.handle: r.values() for r in store.iter_records()}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def record_line(handle: str, *values: dict) -> str:
    return json.dumps({"handle": handle, "values": list(values)})


URL_VALUE = {"index": 1, "type": "URL", "data": "https://example.org/"}


# -- export ------------------------------------------------------------------------------------------


def test_export_import_round_trip_is_exact(tmp_path: Path, source, capsys: pytest.CaptureFixture[str]) -> None:
    directory, records = source
    out = tmp_path / "handles.jsonl"
    assert export.main([str(directory), "-o", str(out)]) == 0
    assert "exported 3 handle(s)" in capsys.readouterr().err
    target = make_server_dir(tmp_path / "target", partitions=2)
    assert import_handles.main([str(target), str(out)]) == 0
    assert "imported 3 handle(s)" in capsys.readouterr().out
    assert stored(target) == records
    assert not list(tmp_path.glob(".handles.jsonl.partial-*"))


def test_export_lines_are_sorted_compact_rest_json(source, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    directory, _records = source
    assert export.main([str(directory)]) == 0
    lines = capsysbinary.readouterr().out.decode("utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["handle"] for o in objects] == ["0.NA/TEST", "TEST/ALL-KINDS", "TEST/EMPTY-RECORD"]
    assert all(set(o) == {"handle", "values"} for o in objects)
    assert ", " not in lines[0] and '": ' not in lines[0]  # Gson's compact form
    values = {v["index"]: v for v in objects[0]["values"]}
    assert values[100]["data"]["format"] == "admin"
    assert values[301]["data"]["format"] == "key"
    assert values[302]["data"]["format"] == "base64"  # the "key" form would not give its bytes back
    assert values[400]["data"]["format"] == "site"
    kinds = {v["index"]: v for v in objects[1]["values"]}
    assert kinds[3]["timestamp"] == "1970-01-01T00:00:00Z"
    assert kinds[1]["data"] == {"format": "string", "value": "https://example.org/ünïcode"}
    assert kinds[2]["data"]["format"] == "base64"


def test_export_of_a_directory_that_is_not_a_server_directory(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").mkdir()
    assert export.main([str(tmp_path / "plain")]) == 1
    assert "is not a server directory" in capsys.readouterr().err
    assert export.main([str(tmp_path / "missing")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    make_server_dir(tmp_path / "no-store")
    assert export.main([str(tmp_path / "no-store")]) == 1
    assert "no handle store" in capsys.readouterr().err
    assert not (tmp_path / "no-store" / "hdldb").exists()  # export never creates a store


def test_export_names_handles_json_cannot_carry_and_fails(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_server_dir(tmp_path / "srv")
    with open_dir_store(directory) as store:
        store.create_handle(b"TEST/\xff\xfe", [HandleValue(1, b"URL", b"x", timestamp=NOW)])
        store.create_handle(b"TEST/BADTYPE", [HandleValue(1, b"\xc3", b"x", timestamp=NOW)])
        store.create_handle(b"TEST/FINE", [HandleValue(1, b"URL", b"x", timestamp=NOW)])
    out = tmp_path / "out.jsonl"
    assert export.main([str(directory), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "TEST/\\xff\\xfe not exported: the handle name is not UTF-8" in err
    assert "TEST/BADTYPE not exported: value 1" in err
    assert "exported 1 handle(s)" in err and "2 not exported" in err
    assert [json.loads(line)["handle"] for line in out.read_text().splitlines()] == ["TEST/FINE"]


def test_progress_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    progress = export.Progress(terminal, interval=0)
    progress.update("exported 1 of 2 handles")
    progress.done()
    assert terminal.getvalue().startswith("\rexported 1 of 2 handles")
    piped = io.StringIO()
    quiet = export.Progress(piped, interval=0)
    quiet.update("exported 1 of 2 handles")
    quiet.done()
    assert piped.getvalue() == ""


# -- import ------------------------------------------------------------------------------------------


def test_a_malformed_line_is_reported_with_its_number_and_nothing_is_written(
        tmp_path: Path, source, capsys: pytest.CaptureFixture[str]) -> None:
    directory, records = source
    with open_dir_store(directory) as store:
        last_txn = store.last_txn_id()
    path = write_lines(tmp_path / "in.jsonl", [
        record_line("TEST/new-1", URL_VALUE),
        record_line("TEST/new-2", URL_VALUE),
        '{"handle": "TEST/new-3", "values": [',
        record_line("TEST/new-4", URL_VALUE),
    ])
    assert import_handles.main([str(directory), str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 3: invalid JSON" in err
    assert "nothing was written" in err
    assert stored(directory) == records
    with open_dir_store(directory) as store:
        assert store.last_txn_id() == last_txn


def test_every_problem_is_reported_with_its_line(tmp_path: Path, source,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory, records = source
    path = write_lines(tmp_path / "in.jsonl", [
        record_line("TEST/ok", URL_VALUE),
        "",  # blank lines are skipped but counted
        record_line("TEST/ok", URL_VALUE),
        '["not", "an", "object"]',
        json.dumps({"values": [URL_VALUE]}),
        record_line("TEST/bad-index", {**URL_VALUE, "index": 0}),
        record_line("TEST/twice-index", URL_VALUE, URL_VALUE),
        record_line("TEST/bad-data", {"index": 1, "type": "URL", "data": {"format": "hex", "value": "abc"}}),
        record_line("TEST/ALL-KINDS", URL_VALUE),
        '{"handle": "TEST/dup-key", "handle": "TEST/x", "values": []}',
        record_line("TEST/" + "x" * 600, URL_VALUE),
        json.dumps({"handle": "TEST/no-values"}),
    ])
    path.write_bytes(path.read_bytes() + b'{"handle": "TEST/\xff", "values": []}\n')
    assert import_handles.main([str(directory), str(path)]) == 1
    err = capsys.readouterr().err
    expected = {
        3: "handle TEST/ok is given twice in the file",
        4: "not a JSON object",
        5: '"handle" must be a non-empty string',
        6: "value index 0 is not positive",
        7: "value index 1 is used twice",
        8: "not valid hex",
        9: "handle TEST/ALL-KINDS already exists (use --overwrite to replace it)",
        10: "key 'handle' appears twice",
        11: "cannot be stored",
        12: '"values" must be a list',
        13: "not UTF-8",
    }
    for number, text in expected.items():
        assert any(line.startswith(f"hdl-import: {path}: line {number}: ") and text in line
                   for line in err.splitlines()), (number, text, err)
    assert "line 1:" not in err
    assert stored(directory) == records

    # --skip-invalid: the same problems are reported, those lines are left out and the rest is imported.
    assert import_handles.main([str(directory), str(path), "--skip-invalid"]) == 0
    out, err = capsys.readouterr()
    for number, text in expected.items():
        assert any(line.startswith(f"hdl-import: {path}: line {number}: ") and text in line
                   for line in err.splitlines()), (number, text, err)
    assert f"{len(expected)} line(s) with a problem are left out (--skip-invalid)" in err
    assert f"imported 1 handle(s) into {directory}; skipped {len(expected)} line(s)" in out
    after = stored(directory)
    assert after[b"TEST/OK"][0].data == b"https://example.org/" and len(after) == len(records) + 1


def test_existing_handles_are_replaced_only_with_overwrite(tmp_path: Path, source,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    directory, records = source
    replacement = {"index": 9, "type": "URL", "data": "https://replaced.example/", "timestamp": "2020-01-01T00:00:00Z"}
    path = write_lines(tmp_path / "in.jsonl", [record_line("test/all-kinds", replacement),
                                               record_line("TEST/brand-new", replacement)])
    assert import_handles.main([str(directory), str(path)]) == 1
    assert "line 1: handle test/all-kinds already exists" in capsys.readouterr().err
    assert stored(directory) == records
    assert import_handles.main([str(directory), str(path), "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "imported 2 handle(s)" in out and "(1 replaced existing ones)" in out
    after = stored(directory)
    assert after[b"TEST/ALL-KINDS"] == (HandleValue(9, b"URL", b"https://replaced.example/", timestamp=1577836800),)
    assert after[b"TEST/BRAND-NEW"] == after[b"TEST/ALL-KINDS"]
    assert after[b"0.NA/TEST"] == records[b"0.NA/TEST"]


def test_missing_timestamps_get_the_import_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_server_dir(tmp_path / "srv")
    path = write_lines(tmp_path / "in.jsonl", [record_line("TEST/a", URL_VALUE)])
    before = int(__import__("time").time())
    assert import_handles.main([str(directory), str(path)]) == 0
    (value,) = stored(directory)[b"TEST/A"]
    assert value.timestamp >= before


def test_import_writes_in_batches_and_logs_every_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_server_dir(tmp_path / "srv")
    path = write_lines(tmp_path / "in.jsonl", [record_line(f"TEST/h{i}", URL_VALUE) for i in range(7)])
    batches: list[int] = []
    original = LmdbStore.create_handles

    def counting(self: LmdbStore, items, **kwargs):  # type: ignore[no-untyped-def]
        items = list(items)
        batches.append(len(items))
        return original(self, items, **kwargs)

    monkeypatch.setattr(LmdbStore, "create_handles", counting)
    assert import_handles.main([str(directory), str(path), "--batch-size", "3"]) == 0
    assert batches == [3, 3, 1]
    with open_dir_store(directory) as store:
        assert store.count_handles() == 7
        assert sorted(t.handle for t in store.transactions_since(0)) == [f"TEST/H{i}".encode() for i in range(7)]


def test_import_from_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_server_dir(tmp_path / "srv")
    data = "".join(record_line(f"TEST/s{i}", URL_VALUE) + "\n" for i in range(3)).encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert import_handles.main([str(directory), "-"]) == 0
    assert sorted(stored(directory)) == [b"TEST/S0", b"TEST/S1", b"TEST/S2"]
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"not json\n")))
    assert import_handles.main([str(directory), "-"]) == 1
    assert "hdl-import: standard input: line 1: invalid JSON" in capsys.readouterr().err


def test_an_overlong_line_is_reported_without_being_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    directory = make_server_dir(tmp_path / "srv")
    monkeypatch.setattr(import_handles, "MAX_LINE_BYTES", 200)
    path = write_lines(tmp_path / "in.jsonl", [record_line("TEST/ok", URL_VALUE),
                                               record_line("TEST/long", {**URL_VALUE, "data": "y" * 500}),
                                               record_line("TEST/ok2", URL_VALUE)])
    assert import_handles.main([str(directory), str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 2: longer than 200 bytes" in err and "line 3" not in err


def test_import_into_something_that_is_not_a_server_directory(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write_lines(tmp_path / "in.jsonl", [record_line("TEST/a", URL_VALUE)])
    (tmp_path / "plain").mkdir()
    assert import_handles.main([str(tmp_path / "plain"), str(path)]) == 1
    assert "is not a server directory" in capsys.readouterr().err
    assert not (tmp_path / "plain" / "hdldb").exists()
    directory = make_server_dir(tmp_path / "srv")
    assert import_handles.main([str(directory), str(tmp_path / "missing.jsonl")]) == 1
    assert "missing.jsonl" in capsys.readouterr().err


def test_seen_keys_is_a_set_on_disk() -> None:
    seen = import_handles.SeenKeys()
    try:
        assert seen.add(b"A") and seen.add(b"B")
        assert not seen.add(b"A")
        for i in range(import_handles._SEEN_COMMIT_EVERY + 5):  # across an intermediate commit
            assert seen.add(b"K%d" % i)
        assert not seen.add(b"K3") and not seen.add(b"B")
    finally:
        seen.close()


def test_rest_api_answers_can_be_imported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Java REST API answer (GET /api/handles/{handle}) is a valid line: its other keys are ignored."""
    directory = make_server_dir(tmp_path / "srv")
    answer = {"responseCode": 1, "handle": "TEST/from-java",
              "values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://j.example/"},
                          "ttl": 86400, "timestamp": "2015-05-27T13:31:42Z"}]}
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(answer)])
    assert import_handles.main([str(directory), str(path)]) == 0
    assert stored(directory) == {
        b"TEST/FROM-JAVA": (HandleValue(1, b"URL", b"https://j.example/", timestamp=1432733502),)}
