"""hdl-export from a serving directory, hdl-import into a fresh one: both servers give the same answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from servers import run_cli, setup_server_dir, start_server

from hdlserver.client.resolver import Resolver

RECORDS = [
    {"handle": "TEST/url", "values": [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.org/"}},
        {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "ops@example.org"}, "ttl": 3600}]},
    {"handle": "TEST/binary", "values": [
        {"index": 7, "type": "X-CUSTOM", "data": {"format": "base64", "value": "AAECAwT/"}}]},
    {"handle": "TEST/vlist", "values": [
        {"index": 200, "type": "HS_VLIST", "data": {"format": "vlist", "value": [
            {"handle": "0.NA/TEST", "index": 300}]}}]},
    {"handle": "TEST/Ünïcode", "values": [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.org/ü"}}]},
]


def test_export_then_import_answers_identically(tmp_path: Path) -> None:
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    source_port = setup_server_dir(source_dir)
    records = tmp_path / "records.json"
    records.write_text(json.dumps(RECORDS), encoding="utf-8")
    run_cli("hdlserver.cli.loadjson", source_dir, records)
    source = start_server(source_dir, source_port)
    try:
        exported = tmp_path / "handles.jsonl"
        with exported.open("wb") as out:  # while the source serves
            proc = subprocess.run([sys.executable, "-m", "hdlserver.cli.export", str(source_dir)], stdout=out,
                                  stderr=subprocess.PIPE, timeout=120)
        assert proc.returncode == 0, proc.stderr
        names = [json.loads(line)["handle"] for line in exported.read_text(encoding="utf-8").splitlines()]
        expected = {"0.NA/TEST", "TEST/hello", *(r["handle"] for r in RECORDS)}
        assert {n.encode().upper() for n in names} >= {n.encode().upper() for n in expected}  # stored folded

        # A fresh directory of the same prefix; its own 0.NA/TEST and TEST/hello are replaced by the export's.
        target_port = setup_server_dir(target_dir)
        imported = run_cli("hdlserver.cli.import_handles", target_dir, exported, "--overwrite")
        assert f"imported {len(names)} handle(s)" in imported.stdout
        target = start_server(target_dir, target_port)
        try:
            before, after = Resolver([source.address], udp=False), Resolver([target.address], udp=False)
            for name in names:
                assert after.resolve(name).values == before.resolve(name).values, name
        finally:
            assert target.stop() == 0
    finally:
        assert source.stop() == 0
