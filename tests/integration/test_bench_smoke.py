"""Smoke test of the resolution benchmark tool (scripts/bench_resolution.py), hdlserver only.

It runs the real tool with tiny bounds and checks the accounting, never the speed: every scenario
got answers, no answer to an existing name was an error, and with missing names the RC 100 answers
are counted as "not found", not as errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_resolution.py"
MISSING_PERCENT = 50
RUN_TIMEOUT = 120


def cpu_pair() -> tuple[int, int]:
    """Two distinct CPUs this process may use (or the same one twice on a one-CPU machine)."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], cpus[1] if len(cpus) > 1 else cpus[0]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    work = tmp_path_factory.mktemp("bench")
    json_out = work / "bench.json"
    server_cpu, load_cpu = cpu_pair()
    argv = [sys.executable, str(SCRIPT), "--servers", "hdlserver", "--handles", "50", "--seconds", "1",
            "--warmup", "0.2", "--window", "8", "--transports", "udp,tcp",
            "--missing-percent", f"0,{MISSING_PERCENT}", "--server-cpu", str(server_cpu),
            "--load-cpu", str(load_cpu), "--python", sys.executable, "--cache-dir", str(work / "cache"),
            "--json-out", str(json_out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(json_out.read_text()), proc.stdout


def scenario(report: dict[str, Any], mode: str, missing: float) -> dict[str, Any]:
    matches = [r for r in report["results"] if r["mode"] == mode and r["missing_percent"] == missing]
    assert len(matches) == 1, f"expected one {mode} {missing}% result, got {matches}"
    return matches[0]


def test_help_runs() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for option in ("--handles", "--seconds", "--window", "--missing-percent", "--transports", "--servers",
                   "--server-cpu", "--load-cpu", "--no-uvloop", "--json-out"):
        assert option in proc.stdout


def test_all_four_scenarios_ran(bench: tuple[dict[str, Any], str]) -> None:
    report, _ = bench
    keys = sorted((r["server"], r["mode"], r["missing_percent"]) for r in report["results"])
    assert keys == [("hdlserver", "tcp", 0), ("hdlserver", "tcp", MISSING_PERCENT),
                    ("hdlserver", "udp", 0), ("hdlserver", "udp", MISSING_PERCENT)]


@pytest.mark.parametrize("mode", ["udp", "tcp"])
def test_existing_names_answer_without_errors(bench: tuple[dict[str, Any], str], mode: str) -> None:
    result = scenario(bench[0], mode, 0)
    assert result["answered"] > 0
    assert result["errors"] == 0, result
    assert result["ok"] == result["answered"]
    assert result["not_found"] == 0
    assert result["sent"] >= result["answered"]
    assert 0 < result["p50_us"] <= result["p99_us"] <= result["max_us"]


@pytest.mark.parametrize("mode", ["udp", "tcp"])
def test_missing_names_count_as_not_found(bench: tuple[dict[str, Any], str], mode: str) -> None:
    result = scenario(bench[0], mode, MISSING_PERCENT)
    assert result["answered"] > 0
    assert result["errors"] == 0, result
    assert result["not_found"] > 0
    assert result["ok"] > 0
    assert result["ok"] + result["not_found"] == result["answered"]


def test_tcp_mode_is_reported(bench: tuple[dict[str, Any], str]) -> None:
    result = scenario(bench[0], "tcp", 0)
    assert result["tcp_mode"] in ("pipelined", "reconnect")


def test_table_and_server_facts(bench: tuple[dict[str, Any], str]) -> None:
    report, stdout = bench
    assert "server" in stdout and "rps" in stdout and "p99 ms" in stdout and "RSS MB" in stdout
    table_rows = [line for line in stdout.splitlines() if line.startswith("hdlserver ")]
    assert len(table_rows) == 4
    facts = report["servers"]["hdlserver"]
    assert facts["ttfa_s"] > 0
    assert facts["idle_rss_mb"] > 0
    assert facts["peak_rss_mb"] >= facts["idle_rss_mb"]
    assert all(r["peak_rss_mb"] > 0 for r in report["results"])
