"""The offline tools that write the store (hdl-loadjson, hdl-import, hdl-dbremove) keep the reverse index."""

from __future__ import annotations

import json
from pathlib import Path

from hdlserver.cli import dbremove, import_handles, loadjson
from hdlserver.cli.dblist import open_server_store
from hdlserver.config.dct import format_dct
from hdlserver.store.reverse_index import condition


def server_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {"server_config": {"this_server_id": "1", "case_sensitive": "no", "storage_partitions": "2"}}
    (directory / "config.dct").write_text(format_dct(config), encoding="utf-8")
    return directory


def url_value(location: str) -> dict[str, object]:
    return {"index": 1, "type": "URL", "data": {"format": "string", "value": location}}


def found(directory: Path, pattern: str) -> list[bytes]:
    with open_server_store(directory, readonly=True, create=False) as store:
        return store.search([condition("URL", pattern)], limit=100, max_scanned=10_000)


def test_loadjson_and_dbremove_keep_the_index(tmp_path: Path) -> None:
    directory = server_dir(tmp_path / "srv")
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"TEST/1": [url_value("https://load.example/1")],
                                  "TEST/2": [url_value("https://load.example/2")]}), encoding="utf-8")
    assert loadjson.main([str(directory), str(source)]) == 0
    assert found(directory, "https://load.example/*") == [b"TEST/1", b"TEST/2"]
    source.write_text(json.dumps({"TEST/1": [url_value("https://load.example/changed")]}), encoding="utf-8")
    assert loadjson.main([str(directory), str(source), "--overwrite"]) == 0
    assert found(directory, "https://load.example/*") == [b"TEST/2", b"TEST/1"]  # index order: by data
    assert found(directory, "https://load.example/1") == []
    assert dbremove.main([str(directory), "TEST/2"]) == 0
    assert found(directory, "https://load.example/*") == [b"TEST/1"]


def test_import_keeps_the_index(tmp_path: Path) -> None:
    directory = server_dir(tmp_path / "srv")
    lines = tmp_path / "handles.jsonl"
    lines.write_text("".join(json.dumps({"handle": f"TEST/{i}", "values": [url_value(f"https://imp.example/{i}")]})
                             + "\n" for i in range(3)), encoding="utf-8")
    assert import_handles.main([str(directory), str(lines)]) == 0
    assert found(directory, "https://imp.example/*") == [b"TEST/0", b"TEST/1", b"TEST/2"]
