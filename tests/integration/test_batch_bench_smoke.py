"""Smoke test of scripts/bench_batch.py with our tool against hdlserver only and a tiny batch: it runs,
every operation succeeds, and the table and JSON report what was measured (never how fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_batch.py"
OPS = 20


def test_bench_batch_runs_and_reports(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    json_out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--ops", str(OPS), "--tools", "ours", "--servers",
                           "hdlserver", "--server-cpu", str(cpus[0]), "--client-cpu", str(cpus[-1]),
                           "--python", sys.executable, "--json-out", str(json_out)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "client tool  server" in proc.stdout and "ops/s" in proc.stdout
    report = json.loads(json_out.read_text())
    (result,) = report["results"]
    assert (result["tool"], result["server"], result["successes"], result["ops"]) == ("ours", "hdlserver", OPS, OPS)
    assert result["ops_per_s"] > 0 and result["p50_ms"] is not None and result["p99_ms"] >= result["p50_ms"]
    assert result["peak_rss_mb"] > 0
