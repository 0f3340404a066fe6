"""Handle-based replication sources with real servers: a primary whose prefix handle 0.NA/TEST carries
two HS_SITE values (its own site at index 1, a second primary site at index 2 where nothing answers).

Covers ``values_resolver`` over a real store (locally where the server homes 0.NA/0.NA, remotely through
the root site of ``~/.handle/root_info``), own-site detection, and hdl-dumpfromprimary with
``replication_sites_handle``: it times both sites, dumps from the one that answers and names the queue
``0:1:0.NA/TEST`` in txnstat.dct.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from repl_support import make_mirror
from servers import ServerProcess, free_port, run_cli, setup_server_dir, start_server

from hdlserver.cli import dumpfromprimary
from hdlserver.client.admin import AdminClient, Identity, SecretKeyIdentity
from hdlserver.config.settings import load_settings
from hdlserver.config.siteinfo import load_site_info
from hdlserver.errors import HandleError
from hdlserver.replication.fastest import site_info_probe
from hdlserver.replication.mirror import ReplicationState
from hdlserver.replication.puller import replication_identity
from hdlserver.replication.source_sites import Sources, SourceSite, source_collection, values_resolver
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.bodies import DumpHandlesRequest
from hdlserver.wire.site import Interface, ServerInfo, SiteInfo, address_from_text, decode_site, encode_site
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")
SITE_TYPES = (b"HS_SITE", b"HS_SITE.6")
FAST_PROBE = site_info_probe(tcp_timeout=2.0, udp_waits=(0.3,))


def silent_site(key: bytes) -> SiteInfo:
    """A primary site on a loopback port where nothing listens (UDP and TCP)."""
    port = free_port()
    server = ServerInfo(1, address_from_text("127.0.0.1"), key, (Interface(3, 1, port), Interface(2, 0, port)))
    return SiteInfo(primary=True, serial=2, servers=(server,))


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, SiteInfo]]:
    directory = tmp_path_factory.mktemp("sources-primary") / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    own = load_site_info(directory)
    silent = silent_site(own.servers[0].public_key)
    with AdminClient(server.address, ADMIN) as admin:
        admin.add_values("0.NA/TEST", [HandleValue(1, b"HS_SITE", encode_site(own)),
                                       HandleValue(2, b"HS_SITE", encode_site(silent))])
        admin.create_handle("TEST/sources-handle", [HandleValue(1, b"URL", b"http://example.org/s")])
    yield server, silent
    server.stop()


@pytest.fixture()
def home(tmp_path: Path, primary: tuple[ServerProcess, SiteInfo], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose ~/.handle/root_info is the primary's site (it homes 0.NA/0.NA, so it is the root here)."""
    directory = tmp_path / "home"
    (directory / ".handle").mkdir(parents=True)
    shutil.copyfile(primary[0].directory / "siteinfo.json", directory / ".handle" / "root_info")
    monkeypatch.setenv("HOME", str(directory))
    return directory


def test_local_values_give_the_other_primary_and_the_own_site(primary: tuple[ServerProcess, SiteInfo]) -> None:
    server, silent = primary
    directory = server.directory
    config = load_settings(directory).server
    me = load_site_info(directory).servers[0]
    with open_store(directory, case_sensitive=False, readonly=True) as store:
        resolve = values_resolver(store)
        values = resolve(b"0.NA/TEST", SITE_TYPES, ())
        assert sorted(v.index for v in values) == [1, 2]
        assert [v.index for v in resolve(b"0.NA/TEST", (), (2,))] == [2]
        sources = source_collection(directory, dataclasses.replace(config, replication_sites_handle="0.NA/TEST"),
                                    me, resolve).refresh()
        with pytest.raises(HandleError, match=r"0\.NA/NOPE does not exist here"):
            resolve(b"0.NA/NOPE", SITE_TYPES, ())
    assert (sources.own_name, sources.own_priority) == ("1:0.NA/TEST", 1)
    assert [(s.name, s.priority, s.site) for s in sources.sites] == [("2:0.NA/TEST", 2, silent)]


def test_remote_values_through_the_root_site(tmp_path: Path, home: Path,
                                             primary: tuple[ServerProcess, SiteInfo]) -> None:
    with open_store(tmp_path / "empty", case_sensitive=False) as store:
        store.create_handle(b"0.NA/TEST", [HandleValue(1, b"URL", b"a bootstrap copy, not homed here")])
        resolve = values_resolver(store, timeout=3.0)
        values = resolve(b"0.NA/TEST", SITE_TYPES, ())
        assert {v.index: decode_site(v.data).serial for v in values} == {1: 1, 2: 2}
        with pytest.raises(HandleError, match=r"0.NA/NOPE.*RC 100"):
            resolve(b"0.NA/NOPE", SITE_TYPES, ())
        (home / ".handle" / "root_info").unlink()
        with pytest.raises(HandleError, match=r"root_info does not exist"):
            resolve(b"0.NA/TEST", SITE_TYPES, ())


def test_dumpfromprimary_with_a_sites_handle(tmp_path: Path, home: Path,
                                             primary: tuple[ServerProcess, SiteInfo]) -> None:
    server, _silent = primary
    directory = tmp_path / "mirror"
    make_mirror(directory, server.directory / "siteinfo.json", server.directory / "admpriv.bin",
                extra=('"replication_sites_handle" = "0.NA/TEST"',))
    (directory / "txnsrcsv.json").unlink()  # the handle, not a file, names the sources
    done = run_cli("hdlserver.cli.dumpfromprimary", directory, "--retry-wait", "0.1",
                   env={**os.environ, "HOME": str(home)})
    timings = done.stdout.split("dump site timings (GET_SITE_INFO):\n")[1].splitlines()[:2]
    assert "1:0.NA/TEST: ok over UDP 127.0.0.1" in timings[0]
    assert "2:0.NA/TEST: no answer" in timings[1]
    assert "source site 1:0.NA/TEST" in done.stdout
    with open_store(server.directory, case_sensitive=False, readonly=True) as store:
        newest = store.last_txn_id()
    state = ReplicationState.load(directory / "txnstat.dct")
    assert list(state.sites) == ["1:0.NA/TEST"]  # queue 0:1:0.NA/TEST: server 0 of the site at index 1
    assert state.queue("1:0.NA/TEST", 0).last_txn_id == newest
    with open_store(directory, case_sensitive=False, readonly=True) as store:
        assert store.exists(b"TEST/SOURCES-HANDLE")
        assert sorted(v.index for v in store.get_values(b"0.NA/TEST") or () if v.type == b"HS_SITE") == [1, 2]


def _dump_target(tmp_path: Path, server: ServerProcess) -> tuple[Path, DumpHandlesRequest, Identity]:
    directory = tmp_path / "target"
    make_mirror(directory, server.directory / "siteinfo.json", server.directory / "admpriv.bin")
    config = load_settings(directory).server
    return directory, DumpHandlesRequest(2, 1, 0), replication_identity(directory, config.replication_authentication)


def test_a_silent_site_is_timed_last_and_tried_last(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    primary: tuple[ServerProcess, SiteInfo]) -> None:
    server, silent = primary
    directory, request, identity = _dump_target(tmp_path, server)
    config = load_settings(directory).server
    answering = load_site_info(server.directory)
    sources = Sources((SourceSite("1:X/SITES", 1, silent), SourceSite("2:X/SITES", 2, answering)), None, 0)
    source, result = dumpfromprimary.dump_from_fastest(directory, config, sources, 4, request, identity,
                                                       0.1, FAST_PROBE)
    assert source.name == "2:X/SITES" and result.progress.handles > 0
    out = capsys.readouterr().out.splitlines()
    assert "2:X/SITES: ok over UDP" in out[1] and "1:X/SITES: no answer" in out[2]


def test_no_site_completes_a_dump(tmp_path: Path, primary: tuple[ServerProcess, SiteInfo]) -> None:
    server, silent = primary
    directory, request, identity = _dump_target(tmp_path, server)
    config = load_settings(directory).server
    sources = Sources((SourceSite("1:X/SITES", 1, silent),), None, 0)
    with pytest.raises(HandleError, match=r"no source site completed a dump: 1:X/SITES: "):
        dumpfromprimary.dump_from_fastest(directory, config, sources, 4, request, identity,
                                          0.1, FAST_PROBE)
    with pytest.raises(HandleError, match=r"no source sites to dump from \(the only one is this server's own, 1:H\)"):
        dumpfromprimary.dump_from_fastest(directory, config, Sources((), "1:H", 1), 4, request,
                                          identity, 0.1, FAST_PROBE)
