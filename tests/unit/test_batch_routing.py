"""Where admin requests go: fixed server, site (with the HS_SITE hash), prefix resolution through HS_SITE /
HS_SERV, Java client configuration directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hdlserver.batch.routing import (
    FixedRouter,
    PrefixRouter,
    RoutingError,
    SiteRouter,
    java_config_dir,
    router_from_config_dir,
)
from hdlserver.client.resolver import HandleResponseError, Resolution
from hdlserver.config.siteinfo import site_info_json_text
from hdlserver.errors import ConfigError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import (
    IF_ADMIN_AND_QUERY,
    IF_QUERY,
    PROTO_TCP,
    PROTO_UDP,
    Interface,
    ServerInfo,
    SiteInfo,
    address_from_text,
    encode_site,
)
from hdlserver.wire.values import HandleValue


def site(port: int, *, primary: bool = True, servers: int = 1) -> SiteInfo:
    return SiteInfo(primary=primary, servers=tuple(
        ServerInfo(i + 1, address_from_text(f"127.0.0.{i + 1}"), b"",
                   (Interface(IF_QUERY, PROTO_UDP, port), Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, port)))
        for i in range(servers)))


class FakeResolver:
    def __init__(self, records: dict[bytes, list[HandleValue]]) -> None:
        self.records = records
        self.asked: list[bytes] = []

    def resolve(self, handle: bytes, **kwargs: Any) -> Resolution:
        self.asked.append(handle)
        if handle not in self.records:
            raise HandleResponseError(ResponseCode.HANDLE_NOT_FOUND)
        return Resolution(handle, tuple(self.records[handle]), "UDP", ("127.0.0.1", 1))


def test_fixed_and_site_routers() -> None:
    assert FixedRouter(("h", 1)).admin_server(b"X/y") == ("h", 1)
    assert FixedRouter(("h", 1)).site_for(b"X/y") is None
    router = SiteRouter(site(2641, servers=3))
    chosen = {router.admin_server(f"TEST/{i}".encode()) for i in range(20)}
    assert chosen == {(f"127.0.0.{i}", 2641) for i in (1, 2, 3)}
    assert router.site_servers(b"TEST/x") == [(f"127.0.0.{i}", 2641) for i in (1, 2, 3)]


def test_site_without_tcp_admin_interface() -> None:
    query_only = SiteInfo(servers=(ServerInfo(7, address_from_text("10.0.0.1"), b"",
                                              (Interface(IF_QUERY, PROTO_UDP, 2641),)),))
    with pytest.raises(RoutingError, match=r"server 7 \(10.0.0.1\) has no TCP admin interface"):
        SiteRouter(query_only).admin_server(b"TEST/x")
    with pytest.raises(RoutingError, match="lists no servers"):
        SiteRouter(SiteInfo())


def test_prefix_router_uses_the_primary_hs_site_once_per_prefix() -> None:
    resolver = FakeResolver({b"0.NA/TEST": [HandleValue(1, b"HS_SITE", encode_site(site(3000, primary=False))),
                                            HandleValue(2, b"HS_SITE", encode_site(site(4000))),
                                            HandleValue(3, b"HS_SITE", b"damaged")]})
    router = PrefixRouter(resolver)  # type: ignore[arg-type]
    assert router.admin_server(b"test/a") == ("127.0.0.1", 4000)
    assert router.admin_server(b"TEST/b") == ("127.0.0.1", 4000)
    assert resolver.asked == [b"0.NA/TEST"]


def test_prefix_router_follows_hs_serv_and_routes_prefix_handles_to_the_root() -> None:
    resolver = FakeResolver({b"0.NA/TEST": [HandleValue(1, b"HS_SERV", b"0.NA/SERVICE")],
                             b"0.NA/SERVICE": [HandleValue(1, b"HS_SITE", encode_site(site(5000)))],
                             b"0.NA/0.NA": [HandleValue(1, b"HS_SITE", encode_site(site(6000)))]})
    router = PrefixRouter(resolver)  # type: ignore[arg-type]
    assert router.admin_server(b"TEST/x") == ("127.0.0.1", 5000)
    assert router.admin_server(b"0.NA/TEST") == ("127.0.0.1", 6000)


def test_prefix_router_errors() -> None:
    router = PrefixRouter(FakeResolver({b"0.NA/EMPTY": [HandleValue(1, b"URL", b"x")]}))  # type: ignore[arg-type]
    with pytest.raises(RoutingError, match=r"cannot find the site of 0\.NA/NONE: Error\(100\): HANDLE_NOT_FOUND"):
        router.admin_server(b"NONE/x")
    with pytest.raises(RoutingError, match=r"0\.NA/EMPTY has no HS_SITE value"):
        router.admin_server(b"EMPTY/x")


def test_local_prefixes_use_the_local_site_without_resolving() -> None:
    resolver = FakeResolver({})
    router = PrefixRouter(resolver, local_site=site(7000), local_prefixes=frozenset({b"0.na/test"}))  # type: ignore[arg-type]
    assert router.admin_server(b"TEST/x") == ("127.0.0.1", 7000) and resolver.asked == []
    with pytest.raises(RoutingError):
        router.admin_server(b"OTHER/x")


def test_java_config_dir(tmp_path: Path) -> None:
    (tmp_path / "resolver_site").write_text(site_info_json_text(site(8000)))
    (tmp_path / "local_nas").write_text("*\n0.NA/0.NA\n")
    router = router_from_config_dir(tmp_path, lambda s: FakeResolver({}))  # type: ignore[arg-type,return-value]
    assert router.admin_server(b"ANY/x") == ("127.0.0.1", 8000)
    with pytest.raises(ConfigError, match="neither resolver_site nor root_info"):
        router_from_config_dir(tmp_path / "missing", lambda s: FakeResolver({}))  # type: ignore[arg-type,return-value]


def test_java_config_dir_with_only_a_root_site(tmp_path: Path) -> None:
    (tmp_path / "root_info").write_bytes(encode_site(site(9000)))
    resolver = FakeResolver({b"0.NA/TEST": [HandleValue(1, b"HS_SITE", encode_site(site(9100)))]})
    router = router_from_config_dir(tmp_path, lambda s: resolver)  # type: ignore[arg-type,return-value]
    assert router.admin_server(b"TEST/x") == ("127.0.0.1", 9100) and resolver.asked == [b"0.NA/TEST"]


def test_java_config_dir_location(tmp_path: Path) -> None:
    assert java_config_dir({"JAVA_OPTS": "-Xmx1g -Dnet.handle.configDir=/etc/hdl", "HOME": str(tmp_path)}) == \
        Path("/etc/hdl")
    assert java_config_dir({"HOME": str(tmp_path)}) is None
    (tmp_path / ".handle").mkdir()
    (tmp_path / ".handle" / "root_info").write_bytes(b"x")
    assert java_config_dir({"HOME": str(tmp_path)}) == tmp_path / ".handle"
