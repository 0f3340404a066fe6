"""Replication sources (replication/source_sites.py) and the dump-site timing order (replication/fastest.py).

File-based sources are real files in a tmp dir; handle-based ones get their values from a scripted resolver
(the real resolver over a real store and servers is in tests/integration/test_repl_sources_handle.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from hdlserver.config.settings import ServerConfig
from hdlserver.config.siteinfo import save_site_info_bin, save_site_info_json
from hdlserver.errors import ConfigError, HandleError
from hdlserver.replication.fastest import Answer, SiteTiming, by_speed, time_sites
from hdlserver.replication.source_sites import (
    FILE_SOURCE_NAME,
    SourceSite,
    parse_value_reference,
    source_collection,
    sources_from_values,
)
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import Interface, ServerInfo, SiteInfo, address_from_text, encode_site
from hdlserver.wire.values import HandleValue

HANDLE = "0.NA/TEST"


def server(address: str, *ports: int, server_id: int = 1) -> ServerInfo:
    return ServerInfo(server_id, address_from_text(address), b"key",
                      tuple(Interface(3, proto, port) for port in ports for proto in (0, 1)))


ME = server("10.0.0.1", 2641)
OWN_SITE = SiteInfo(primary=True, servers=(ME,))
OTHER = SiteInfo(primary=True, serial=7, servers=(server("10.0.0.2", 2641),))
MIRROR = SiteInfo(primary=False, servers=(server("10.0.0.3", 2641),))
SAME_HOST_OTHER_PORT = SiteInfo(primary=True, servers=(server("10.0.0.1", 2700),))


def site_value(index: int, site: SiteInfo, type_: bytes = b"HS_SITE") -> HandleValue:
    return HandleValue(index, type_, encode_site(site))


class ScriptedResolver:
    """``ResolveValues``: each call takes the next scripted answer (a list of values, or an error)."""

    def __init__(self, *answers: Sequence[HandleValue] | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[bytes, tuple[bytes, ...], tuple[int, ...]]] = []

    def __call__(self, handle: bytes, types: tuple[bytes, ...], indexes: tuple[int, ...]) -> Sequence[HandleValue]:
        self.calls.append((handle, types, indexes))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def config(**keys: str) -> ServerConfig:
    return dataclasses.replace(ServerConfig(this_server_id=1), **keys)  # type: ignore[arg-type]


def no_resolver(handle: bytes, types: tuple[bytes, ...], indexes: tuple[int, ...]) -> Sequence[HandleValue]:
    raise AssertionError("a file-based collection must not resolve handles")


# -- file-based


def test_file_sources_bin_wins_over_json_and_are_reread_when_the_mtime_changes(tmp_path: Path) -> None:
    save_site_info_json(tmp_path / "txnsrcsv.json", OTHER)
    sources = source_collection(tmp_path, config(), ME, no_resolver)
    first = sources.refresh()
    assert [(s.name, s.priority, s.site.serial) for s in first.sites] == [(FILE_SOURCE_NAME, 0, 7)]
    assert (first.own_name, first.own_priority) == (None, 0)
    assert sources.refresh() is first  # unchanged file: not read again

    save_site_info_bin(tmp_path / "txnsrcsv.bin", dataclasses.replace(OTHER, serial=8))
    assert sources.refresh().sites[0].site.serial == 8  # the binary one wins

    path = tmp_path / "txnsrcsv.bin"
    save_site_info_bin(path, dataclasses.replace(OTHER, serial=9))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert sources.refresh().sites[0].site.serial == 9


def test_file_sources_return_the_site_whole_even_when_it_contains_this_server(tmp_path: Path) -> None:
    save_site_info_json(tmp_path / "txnsrcsv.json", OWN_SITE)
    got = source_collection(tmp_path, config(), ME, no_resolver).refresh()
    assert got.sites[0].site == OWN_SITE and got.own_name is None


def test_file_sources_missing_both_files_is_a_config_error_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"txnsrcsv\.bin nor txnsrcsv\.json"):
        source_collection(tmp_path, config(), ME, no_resolver).refresh()


def test_file_sources_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "txnsrcsv.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"txnsrcsv\.json"):
        source_collection(tmp_path, config(), ME, no_resolver).refresh()


# -- handle-based: all primary HS_SITE values


def test_sites_handle_keeps_primary_sites_and_finds_its_own_site_and_priority(tmp_path: Path) -> None:
    values = [site_value(1, OWN_SITE), site_value(2, OTHER, b"HS_SITE.6"), site_value(3, MIRROR),
              HandleValue(100, b"HS_ADMIN", b"\0\0"), site_value(4, SAME_HOST_OTHER_PORT)]
    resolver = ScriptedResolver(values)
    got = source_collection(tmp_path, config(replication_sites_handle=HANDLE), ME, resolver).refresh()
    assert resolver.calls == [(HANDLE.encode(), (b"HS_SITE", b"HS_SITE.6"), ())]
    assert [(s.name, s.priority) for s in got.sites] == [("2:0.NA/TEST", 2), ("4:0.NA/TEST", 4)]
    assert got.sites[0].site == OTHER
    assert (got.own_name, got.own_priority) == ("1:0.NA/TEST", 1)


def test_own_site_matches_on_address_and_any_interface_port() -> None:
    me = server("10.0.0.1", 2641, 8000)
    own_by_http_port = SiteInfo(servers=(server("10.0.0.1", 8000),))
    got = sources_from_values(HANDLE, [site_value(5, own_by_http_port)], me)
    assert (got.sites, got.own_name, got.own_priority) == ((), "5:0.NA/TEST", 5)


def test_without_own_site_the_priority_is_zero() -> None:
    got = sources_from_values(HANDLE, [site_value(2, OTHER)], ME)
    assert (got.own_name, got.own_priority) == (None, 0)
    assert [s.name for s in got.sites] == ["2:0.NA/TEST"]


def test_undecodable_site_data_skips_only_that_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "hdlserver.replication"):
        got = sources_from_values(HANDLE, [HandleValue(2, b"HS_SITE", b"\0\1garbage"), site_value(3, OTHER)], ME)
    assert [s.name for s in got.sites] == ["3:0.NA/TEST"]
    assert "2:0.NA/TEST" in caplog.text and "does not decode" in caplog.text


def test_a_failed_refresh_keeps_the_last_good_sites(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    resolver = ScriptedResolver([site_value(2, OTHER)], HandleError("the root server did not answer"),
                                [site_value(1, OWN_SITE)])
    sources = source_collection(tmp_path, config(replication_sites_handle=HANDLE), ME, resolver)
    first = sources.refresh()
    with caplog.at_level(logging.ERROR, "hdlserver.replication"):
        assert sources.refresh() == first
    assert "keeping the 1 site(s)" in caplog.text and "did not answer" in caplog.text
    third = sources.refresh()  # a refresh that works replaces the list at once: the removed site is gone
    assert (third.sites, third.own_name) == ((), "1:0.NA/TEST")


def test_a_first_refresh_that_fails_raises_with_the_reason(tmp_path: Path) -> None:
    resolver = ScriptedResolver(OSError("connection refused"))
    sources = source_collection(tmp_path, config(replication_sites_handle=HANDLE), ME, resolver)
    with pytest.raises(HandleError, match=r"cannot read the replication sources from 0\.NA/TEST: connection refused"):
        sources.refresh()


def test_sites_handle_wins_over_the_single_value_key(tmp_path: Path) -> None:
    resolver = ScriptedResolver([site_value(2, OTHER)])
    source_collection(tmp_path, config(replication_sites_handle=HANDLE, replication_site_handle_value="3:X/Y"),
                      ME, resolver).refresh()
    assert resolver.calls[0][0] == HANDLE.encode()


# -- handle-based: one value


def test_single_value_may_be_a_mirror_and_only_that_index_counts(tmp_path: Path) -> None:
    resolver = ScriptedResolver([site_value(3, MIRROR), site_value(2, OTHER)])
    got = source_collection(tmp_path, config(replication_site_handle_value="3:0.NA/TEST"), ME, resolver).refresh()
    assert resolver.calls == [(HANDLE.encode(), (), (3,))]
    assert [(s.name, s.priority, s.site.primary) for s in got.sites] == [("3:0.NA/TEST", 3, False)]


def test_single_value_that_is_this_servers_site_gives_the_own_name(tmp_path: Path) -> None:
    got = source_collection(tmp_path, config(replication_site_handle_value="1:0.NA/TEST"), ME,
                            ScriptedResolver([site_value(1, OWN_SITE)])).refresh()
    assert (got.sites, got.own_name, got.own_priority) == ((), "1:0.NA/TEST", 1)


def test_single_value_missing_or_not_a_site(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sources = source_collection(tmp_path, config(replication_site_handle_value="3:0.NA/TEST"), ME,
                                ScriptedResolver([site_value(2, OTHER)], [HandleValue(3, b"URL", b"x")]))
    with pytest.raises(HandleError, match=r"0\.NA/TEST has no value at index 3"):
        sources.refresh()
    with caplog.at_level(logging.WARNING, "hdlserver.replication"):
        assert sources.refresh().sites == ()
    assert "is a URL value, not HS_SITE" in caplog.text


@pytest.mark.parametrize("text", ["0.NA/TEST", "x:0.NA/TEST", "0:0.NA/TEST", "-1:0.NA/TEST", "3:", ""])
def test_bad_single_value_syntax_is_a_readable_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"replication_site_handle_value must be <index>:<handle>"):
        source_collection(tmp_path, config(replication_site_handle_value=text or " "), ME, no_resolver)


def test_value_reference_parses_handles_with_colons() -> None:
    assert parse_value_reference(" 12:0.NA/a:b ") == (12, "0.NA/a:b")


# -- the dump site's choice (fastest.py)


def source(name: str) -> SourceSite:
    return SourceSite(name, int(name.split(":")[0]), OTHER)


def test_timings_sort_successes_fastest_first_then_error_answers_then_silent_sites() -> None:
    ok = Answer(ResponseCode.SUCCESS, "UDP x")
    refused = Answer(ResponseCode.SERVER_NOT_RESP, "TCP x")
    timings = [SiteTiming(source("1:H"), 0.001, None, "timeout"), SiteTiming(source("2:H"), 0.050, ok),
               SiteTiming(source("3:H"), 0.002, refused), SiteTiming(source("4:H"), 0.010, ok)]
    assert [t.source.name for t in by_speed(timings)] == ["4:H", "2:H", "3:H", "1:H"]


def test_time_sites_measures_with_the_clock_and_keeps_failures_last() -> None:
    ticks = iter([0.0, 3.0, 10.0, 10.02, 20.0, 20.5])
    answers: dict[int, Answer | Exception] = {1: TimeoutError("no UDP answer"),
                                              2: Answer(ResponseCode.SUCCESS, "UDP 10.0.0.2:2641"),
                                              3: Answer(ResponseCode.SUCCESS, "TCP 10.0.0.2:2641")}
    calls: list[SiteInfo] = []

    def probe(site: SiteInfo) -> Answer:
        calls.append(site)
        answer = answers[site.serial]
        if isinstance(answer, Exception):
            raise answer
        return answer

    sites = [SourceSite(f"{i}:H", i, dataclasses.replace(OTHER, serial=i)) for i in (1, 2, 3)]
    got = time_sites(sites, probe, clock=lambda: next(ticks))
    assert [s.serial for s in calls] == [1, 2, 3]
    assert [(t.source.name, round(t.seconds, 3)) for t in got] == [("2:H", 0.02), ("3:H", 0.5), ("1:H", 3.0)]
    assert "no answer (no UDP answer)" in got[-1].describe() and "ok over UDP" in got[0].describe()
