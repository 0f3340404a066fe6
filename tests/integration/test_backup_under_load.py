"""hdl-backup while the server itself writes (admin requests on TCP): the copy, started as a server, answers
exactly as the original does for every handle acknowledged before the backup began."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from servers import free_port, run_cli, setup_server_dir, start_server

from hdlserver.cli.dblist import open_server_store
from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import Resolver
from hdlserver.config.dct import format_dct, load_dct
from hdlserver.errors import HandleError
from hdlserver.wire.values import HandleValue

NAME = "TEST/load-{}-{:05d}"
WRITERS = 2
MAX_WRITES = 5_000  # per writer; stopped long before


def test_backup_under_admin_write_load_answers_identically(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    out = tmp_path / "backup"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    acknowledged: list[list[str]] = [[] for _ in range(WRITERS)]
    stop = threading.Event()
    errors: list[str] = []

    def writer(n: int) -> None:
        try:
            with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"secret"), timeout=10) as admin:
                for i in range(MAX_WRITES):
                    if stop.is_set():
                        return
                    handle = NAME.format(n, i)
                    admin.create_handle(handle, [HandleValue(1, b"URL", b"https://example.org/%d/%d" % (n, i)),
                                                 HandleValue(2, b"EMAIL", b"load@example.org")])
                    acknowledged[n].append(handle)
        except (HandleError, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while min(len(a) for a in acknowledged) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = [h for a in acknowledged for h in list(a)]  # acknowledged before the backup began
        proc = run_cli("hdlserver.cli.backup", directory, out, check=False)
        during = sum(len(a) for a in acknowledged) - len(before)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    try:
        assert proc.returncode == 0, proc.stderr
        assert not errors, errors
        assert during > 0, "the server wrote nothing while the backup ran"
        assert len(before) >= 2 * WRITERS
        # The copy answers on its own port; everything else in it is the original's.
        config = load_dct(out / "config.dct")
        copy_port = free_port()
        for label in ("hdl_udp_config", "hdl_tcp_config"):
            config[label]["bind_port"] = str(copy_port)  # type: ignore[index]
        (out / "config.dct").write_text(format_dct(config), encoding="utf-8")
        restored = start_server(out, copy_port)
        try:
            original_resolver = Resolver([server.address], udp=False)
            copy_resolver = Resolver([restored.address], udp=False)
            for handle in [*before, "TEST/hello", "0.NA/TEST"]:
                assert copy_resolver.resolve(handle).values == original_resolver.resolve(handle).values, handle
        finally:
            assert restored.stop() == 0
        # Non-public values too (the admin secret of 0.NA/TEST): the stored records are the same bytes.
        with open_server_store(directory, readonly=True) as original_store, \
                open_server_store(out, readonly=True) as copy_store:
            for handle in [*before, "0.NA/TEST"]:
                assert copy_store.get_record(handle.encode()) == original_store.get_record(handle.encode())
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("target", ["under-a-file", "proc"])
def test_backup_target_that_cannot_be_created(tmp_path: Path, target: str) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "out" if target == "under-a-file" else Path(f"/proc/hdl-backup-{os.getpid()}")
    proc = run_cli("hdlserver.cli.backup", directory, out, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"hdl-backup: error: {out}: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
