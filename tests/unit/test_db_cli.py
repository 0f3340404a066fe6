"""The offline db tools: hdl-dblist, hdl-dbremove, hdl-loadjson (in-process and as subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hdlserver.cli import dblist, dbremove, loadjson
from hdlserver.cli.dblist import StoreSettings, store_settings
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_DELETE_HANDLE, TXN_HOME_NA
from hdlserver.store.lmdb_store import LmdbStore, open_store
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, HandleValue

URL = HandleValue(1, b"URL", b"http://example.org/", timestamp=1_700_000_000)
EMAIL = HandleValue(2, b"EMAIL", b"a@example.org", timestamp=1_700_000_000)


def run_cli(module: str, *args: str, stdin: str | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def make_store(server_dir: Path, **kwargs: object) -> LmdbStore:
    options: dict = {"case_sensitive": False, "sync": False, **kwargs}
    return open_store(server_dir, **options)


def write_config(server_dir: Path, **server_config: str) -> None:
    entries = "\n".join(f'    "{k}" = "{v}"' for k, v in server_config.items())
    (server_dir / "config.dct").write_text('{\n  "server_config" = {\n    "this_server_id" = "1"\n'
                                           f"{entries}\n  }}\n}}\n", encoding="utf-8")


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    with make_store(tmp_path) as s:
        s.create_handles([(b"TEST/b", [URL]), (b"Test/A", [URL, EMAIL]), (b"OTHER/1", [EMAIL])])
        s.home_prefix(b"test")
        s.home_prefix(b"other")
    return tmp_path


# -- settings


def test_store_settings_defaults_without_config(tmp_path: Path) -> None:
    assert store_settings(tmp_path) == StoreSettings(False, "hdldb", None)


def test_store_settings_from_config(tmp_path: Path) -> None:
    write_config(tmp_path, case_sensitive="yes", db_directory="mydb", storage_partitions="2")
    assert store_settings(tmp_path) == StoreSettings(True, "mydb", 2)
    write_config(tmp_path, case_sensitive="no")
    assert store_settings(tmp_path) == StoreSettings(False, "hdldb", None)


def test_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, storage_partitions="many")
    assert dblist.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "storage_partitions" in err and "config.dct" in err


# -- hdl-dblist


def test_dblist_lists_handles_sorted(server_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dblist.main([str(server_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == ["OTHER/1", "TEST/A", "TEST/B"]


def test_dblist_prefixes(server_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dblist.main([str(server_dir), "-p"]) == 0
    assert capsys.readouterr().out.splitlines() == ["0.NA/OTHER", "0.NA/TEST"]


def test_dblist_values_as_json(server_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dblist.main([str(server_dir), "-v"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OTHER/1\n[\n")
    first_json = out[len("OTHER/1\n") : out.index("\nTEST/A\n")]
    assert json.loads(first_json) == [{"index": 2, "type": "EMAIL",
                                       "data": {"format": "string", "value": "a@example.org"},
                                       "ttl": 86400, "timestamp": "2023-11-14T22:13:20Z"}]


def test_dblist_uses_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, case_sensitive="yes", db_directory="store")
    with open_store(tmp_path, case_sensitive=True, db_directory="store", partitions=2, sync=False) as s:
        s.create_handle(b"test/MiXed", [URL])
    assert dblist.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == "TEST/MiXed\n"


def test_dblist_without_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dblist.main([str(tmp_path)]) == 1
    assert "no handle store" in capsys.readouterr().err
    assert not (tmp_path / "hdldb").exists()  # listing never creates a store
    assert dblist.main([str(tmp_path / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_dblist_usage() -> None:
    with pytest.raises(SystemExit) as info:
        dblist.main([])
    assert info.value.code == 2


def test_dblist_subprocess_while_store_is_open(server_dir: Path) -> None:
    with make_store(server_dir) as s:  # like a running server
        s.create_handle(b"TEST/c", [URL])
        result = run_cli("hdlserver.cli.dblist", str(server_dir), cwd=server_dir.parent)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["OTHER/1", "TEST/A", "TEST/B", "TEST/C"]
    help_text = run_cli("hdlserver.cli.dblist", "--help")
    assert help_text.returncode == 0 and "homed prefixes" in help_text.stdout


# -- hdl-dbremove


def test_dbremove_removes_and_logs(server_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dbremove.main([str(server_dir), "test/a", "OTHER/1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Removing test/a", "Removing OTHER/1"]
    with make_store(server_dir) as s:
        assert list(s.iter_handles()) == [b"TEST/B"]
        log = list(s.transactions_since(0))
        assert [(t.action, t.handle) for t in log[-2:]] == [(TXN_DELETE_HANDLE, b"TEST/A"),
                                                            (TXN_DELETE_HANDLE, b"OTHER/1")]


def test_dbremove_missing_handle(server_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dbremove.main([str(server_dir), "TEST/none", "TEST/B"]) == 1
    captured = capsys.readouterr()
    assert "handle not found: TEST/none" in captured.err
    with make_store(server_dir) as s:
        assert not s.exists(b"TEST/B")  # the other handle was still removed


def test_dbremove_never_creates_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dbremove.main([str(tmp_path), "A/1"]) == 1
    assert "no handle store" in capsys.readouterr().err
    assert not (tmp_path / "hdldb").exists()


def test_dbremove_subprocess(server_dir: Path) -> None:
    result = run_cli("hdlserver.cli.dbremove", str(server_dir), "TEST/B")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Removing TEST/B\n"
    missing = run_cli("hdlserver.cli.dbremove", str(server_dir), "TEST/B")
    assert missing.returncode == 1
    assert "handle not found: TEST/B" in missing.stderr
    usage = run_cli("hdlserver.cli.dbremove", str(server_dir))
    assert usage.returncode == 2 and "HANDLE" in usage.stderr


# -- hdl-loadjson

VALUE_URL = {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://example.org/"}}
VALUE_EMAIL = {"index": 2, "type": "EMAIL", "data": "a@example.org", "permissions": "1100",
               "timestamp": "2023-11-14T22:13:20Z"}


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_loadjson_object_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hdlserver.jsonform.values_json")
    source = write_json(tmp_path / "in.json", {"Test/1": [VALUE_URL, VALUE_EMAIL], "TEST/2": {"values": []}})
    before = int(time.time())
    assert loadjson.main([str(tmp_path), str(source), "--home", "test"]) == 0
    assert "stored 2 handle(s), homed 1 prefix(es)" in capsys.readouterr().out
    with make_store(tmp_path) as s:
        values = s.get_values(b"TEST/1")
        assert values is not None
        url, email = values
        assert (url.index, url.type, url.data) == (1, b"URL", b"http://example.org/")
        assert url.timestamp >= before  # no timestamp given: now, as the server does
        assert email.timestamp == 1_700_000_000
        assert email.permissions == PERM_ADMIN_READ | PERM_ADMIN_WRITE
        assert s.get_values(b"test/2") == ()
        assert s.homed_prefixes() == [b"0.NA/TEST"]
        actions = [(t.action, t.handle) for t in s.transactions_since(0)]
        assert sorted(actions[:2]) == [(TXN_ADD_HANDLE, b"TEST/1"), (TXN_ADD_HANDLE, b"TEST/2")]
        assert actions[2] == (TXN_HOME_NA, b"0.NA/TEST")


def test_loadjson_list_form_from_stdin(tmp_path: Path) -> None:
    pytest.importorskip("hdlserver.jsonform.values_json")
    document = [{"handle": "A/1", "values": [VALUE_URL]}, {"handle": "A/2", "values": [VALUE_EMAIL]}]
    result = run_cli("hdlserver.cli.loadjson", str(tmp_path), "-", stdin=json.dumps(document))
    assert result.returncode == 0, result.stderr
    with make_store(tmp_path) as s:
        assert list(s.iter_handles()) == [b"A/1", b"A/2"]


def test_loadjson_existing_needs_overwrite(server_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hdlserver.jsonform.values_json")
    source = write_json(server_dir / "in.json", {"NEW/1": [VALUE_URL], "test/a": [VALUE_EMAIL]})
    assert loadjson.main([str(server_dir), str(source)]) == 1
    err = capsys.readouterr().err
    assert "handle test/a: already exists (use --overwrite" in err
    assert "nothing was written" in err
    with make_store(server_dir) as s:
        assert not s.exists(b"NEW/1")
        last = s.last_txn_id()
    assert loadjson.main([str(server_dir), str(source), "--overwrite"]) == 0
    with make_store(server_dir) as s:
        assert s.get_values(b"TEST/A")[0].type == b"EMAIL"  # type: ignore[index]
        assert s.exists(b"NEW/1")
        assert s.last_txn_id() == last + 2


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"A/1": [{"index": 1, "type": "URL"}]}, "handle A/1: value #0: "),
        ({"A/1": [VALUE_URL, {**VALUE_EMAIL, "index": 1}]}, "handle A/1: value index 1 is used twice"),
        ({"A/1": [{**VALUE_URL, "index": 0}]}, "handle A/1: value index 0 is not positive"),
        ({"A/1": [VALUE_URL], "a/1": [VALUE_URL]}, "handle a/1: given twice (also as A/1)"),
        ({"A/1": "nope"}, "handle A/1: \"values\" must be a list"),
        ({"A/1": {"value": []}}, "handle A/1: \"values\" must be a list"),
        ({"A/1": ["x"]}, "handle A/1: value #0 is not a JSON object"),
        ({"": [VALUE_URL]}, "a handle must be a non-empty string"),
        ({"A/" + "x" * 600: [VALUE_URL]}, "longer than 511 bytes"),
        ([{"values": []}], "item #0 of the list is not an object with a \"handle\""),
        ("just text", "the top level must be"),
    ],
)
def test_loadjson_rejects_bad_input_and_writes_nothing(server_dir: Path, capsys: pytest.CaptureFixture[str],
                                                       document: object, message: str) -> None:
    pytest.importorskip("hdlserver.jsonform.values_json")
    good_and_bad = document
    if isinstance(document, dict):
        good_and_bad = {"GOOD/1": [VALUE_URL], **document}
    source = write_json(server_dir / "in.json", good_and_bad)
    with make_store(server_dir) as s:
        last = s.last_txn_id()
    assert loadjson.main([str(server_dir), str(source)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "nothing was written" in err
    with make_store(server_dir) as s:
        assert not s.exists(b"GOOD/1")
        assert s.last_txn_id() == last


def test_loadjson_invalid_json_and_duplicate_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hdlserver.jsonform.values_json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"A/1": [\n  {"index": 1,}\n]}', encoding="utf-8")
    assert loadjson.main([str(tmp_path), str(bad)]) == 1
    assert "invalid JSON at line 2" in capsys.readouterr().err
    bad.write_text('{"A/1": [], "A/1": []}', encoding="utf-8")
    assert loadjson.main([str(tmp_path), str(bad)]) == 1
    assert "key 'A/1' appears twice" in capsys.readouterr().err
    assert loadjson.main([str(tmp_path), str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "hdldb").exists()  # rejected input never creates a store


def test_loadjson_home_only_and_bad_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("hdlserver.jsonform.values_json")
    assert loadjson.main([str(tmp_path), "--home", "1234/abc"]) == 1
    assert "--home 1234/abc: not a prefix" in capsys.readouterr().err
    assert not (tmp_path / "hdldb").exists()
    assert loadjson.main([str(tmp_path), "--home", "0.na/x", "--home", "Y"]) == 0
    with make_store(tmp_path) as s:
        assert s.homed_prefixes() == [b"0.NA/X", b"0.NA/Y"]


def test_loadjson_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        loadjson.main([str(tmp_path)])
    assert info.value.code == 2
    assert "give a FILE" in capsys.readouterr().err
    assert loadjson.main([str(tmp_path / "nodir"), "--home", "X"]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_loadjson_respects_case_sensitive_config(tmp_path: Path) -> None:
    pytest.importorskip("hdlserver.jsonform.values_json")
    write_config(tmp_path, case_sensitive="yes")
    source = write_json(tmp_path / "in.json", {"a/x": [VALUE_URL], "a/X": [VALUE_URL]})
    assert loadjson.main([str(tmp_path), str(source)]) == 0
    with open_store(tmp_path, case_sensitive=True, sync=False) as s:
        assert list(s.iter_handles()) == [b"A/X", b"A/x"]


def test_loadjson_subprocess_help() -> None:
    result = run_cli("hdlserver.cli.loadjson", "--help")
    assert result.returncode == 0
    assert "--overwrite" in result.stdout and "--home" in result.stdout
