"""hdl-backup: a point-in-time copy of a serving, written-to server directory that starts as a server."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from servers import run_cli, setup_server_dir, start_server

from hdlserver.cli.dblist import open_server_store
from hdlserver.client.resolver import Resolver
from hdlserver.wire.values import HandleValue

WRITER_NAME = "TEST/w{:06d}"


def test_backup_while_the_server_serves_and_writes(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    out = tmp_path / "backup"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    created: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        # A second writer process-side to the server: the offline tools and the server share the store.
        with open_server_store(directory, readonly=False) as store:
            i = 0
            while not stop.is_set() and i < 100_000:
                store.create_handle(WRITER_NAME.format(i).encode(), [HandleValue(1, b"URL", b"https://e.org/%d" % i)])
                created.append(i)
                i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(created) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = len(created)
        proc = run_cli("hdlserver.cli.backup", directory, out, check=False)
        during = len(created) - before
        assert Resolver([server.address]).resolve("TEST/hello").values  # still serving
    finally:
        stop.set()
        thread.join(30)
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert "one moment for all partitions" in proc.stdout
    assert during > 0, "the writer made no change while the backup ran"

    with open_server_store(out, readonly=True) as copy:
        assert copy.partitions == 4
        written = sorted(h for h in copy.iter_handles() if h.startswith(b"TEST/W"))
        # One moment across all partitions: the writer's handles form an unbroken run from the first.
        assert written == [WRITER_NAME.format(i).upper().encode() for i in range(len(written))]
        assert len(written) >= before
        ids = [t.txn_id for t in copy.transactions_since(0)]
        assert ids == list(range(1, len(ids) + 1)) and copy.last_txn_id() == len(ids)
        assert copy.count_handles() == len(written) + 2  # 0.NA/TEST and TEST/hello from the setup
    assert f"{len(written) + 2} handle(s)" in proc.stdout

    assert not (out / "delete_this_to_stop_server").exists()
    assert out.stat().st_mode & 0o077 == 0
    assert (out / "privkey.bin").stat().st_mode & 0o077 == 0
    for name in ("config.dct", "siteinfo.json", "privkey.bin", "pubkey.bin"):
        assert (out / name).read_bytes() == (directory / name).read_bytes()

    restored = start_server(out, port)
    try:
        resolver = Resolver([restored.address])
        assert resolver.resolve("TEST/hello").values
        assert resolver.resolve(WRITER_NAME.format(len(written) - 1)).values[0].data.startswith(b"https://e.org/")
    finally:
        assert restored.stop() == 0


def test_backup_refuses_a_non_empty_target(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    proc = run_cli("hdlserver.cli.backup", directory, out, check=False)
    assert proc.returncode == 1
    assert "exists and is not empty" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["precious.txt"]

    target_file = tmp_path / "a-file"
    target_file.write_text("x")
    proc = run_cli("hdlserver.cli.backup", directory, target_file, check=False)
    assert proc.returncode == 1 and "is not a directory" in proc.stderr

    proc = run_cli("hdlserver.cli.backup", directory, directory / "inside", check=False)
    assert proc.returncode == 1 and "inside the server directory" in proc.stderr
    assert not (directory / "inside").exists()


def test_backup_into_an_empty_directory(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    out = tmp_path / "empty"
    out.mkdir()
    proc = run_cli("hdlserver.cli.backup", directory, out, check=False)
    assert proc.returncode == 0, proc.stderr
    with open_server_store(out, readonly=True) as copy:
        assert sorted(copy.iter_handles()) == [b"0.NA/TEST", b"TEST/HELLO"]


def test_backup_of_something_that_is_not_a_server_directory(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    proc = run_cli("hdlserver.cli.backup", tmp_path / "plain", tmp_path / "out", check=False)
    assert proc.returncode == 1 and "is not a server directory" in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = run_cli("hdlserver.cli.backup", tmp_path / "nothing", tmp_path / "out", check=False)
    assert proc.returncode == 1 and "is not a directory" in proc.stderr


def test_backup_waits_for_the_store_writer_lock(tmp_path: Path) -> None:
    """The snapshots of all partitions are begun under the lock every writer takes, so a writer holding
    it (here: this test) keeps the backup waiting, and a bounded wait fails with a clear message."""
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    fd = os.open(directory / "hdldb" / "write.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = run_cli("hdlserver.cli.backup", directory, tmp_path / "out", "--lock-wait", "0.5", check=False)
    finally:
        os.close(fd)
    assert proc.returncode == 1
    assert "locked by a writer" in proc.stderr
    assert not (tmp_path / "out").exists()
    run_cli("hdlserver.cli.backup", directory, tmp_path / "out")
