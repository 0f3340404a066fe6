"""The Java Handle.Net 9.2 client against our HTTP interface: native messages tunnelled over HTTP, and over
HTTPS where the Java client accepts only a certificate carrying the server's HS_SITE key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from http_support import InProcessHttp, add_http_interface, http_server_dir, in_process_http
from java import compile_java, run_java, write_client_config
from servers import free_port, setup_server_dir

from hdlserver.auth import keys
from hdlserver.http.certificate import CERTIFICATE_FILE, CERTIFICATE_KEY_FILE, self_signed_certificate

pytestmark = pytest.mark.interop

HTTPS_RESOLVER = """
import net.handle.hdllib.*;

public class HttpsResolve {
    public static void main(String[] args) throws Exception {
        SiteInfo site = Util.getSiteFromFile(args[0]);
        HandleResolver resolver = new HandleResolver();
        resolver.setPreferredProtocols(new int[] { Interface.SP_HDL_HTTPS });
        ResolutionRequest request = new ResolutionRequest(Util.encodeString(args[1]), null, null, null);
        request.certify = true;
        AbstractResponse response = resolver.sendRequestToSite(request, site);
        System.out.println("rc=" + response.responseCode);
        if (response instanceof ResolutionResponse) {
            for (HandleValue value : ((ResolutionResponse) response).getHandleValues()) System.out.println(value);
        }
    }
}
"""


def site_with_only(directory: Path, protocol: str, port: int, target: Path) -> Path:
    """The server's site record with one interface: ``protocol`` on ``port``."""
    site = json.loads((directory / "siteinfo.json").read_text(encoding="utf-8"))
    site["servers"][0]["interfaces"] = [{"query": True, "admin": True, "protocol": protocol, "port": port}]
    target.write_text(json.dumps(site), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def https_resolver(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    directory = tmp_path_factory.mktemp("https-resolver")
    source = directory / "HttpsResolve.java"
    source.write_text(HTTPS_RESOLVER, encoding="utf-8")
    return ("-cp", compile_java(source, directory / "classes"), "HttpsResolve")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHttp]:
    directory = tmp_path_factory.mktemp("java-http") / "srv"
    http_server_dir(directory)
    with in_process_http(directory) as srv:
        yield srv


def server_dir(srv: InProcessHttp) -> Path:
    return Path(srv.state.settings.path).parent


def test_java_client_tunnels_over_http(server: InProcessHttp, tmp_path: Path) -> None:
    site = site_with_only(server_dir(server), "HTTP", server.port, tmp_path / "siteinfo.json")
    config = write_client_config(tmp_path / "client", site, udp=False)
    run = run_java("hdl-qresolver", "TEST/hello", config_dir=config)
    assert run.returncode == 0, run.describe()
    assert "sending HDL-HTTP request" in run.output, run.describe()
    assert 'index=1 type=URL rwr- "https://www.handle.net/"' in run.output, run.describe()


def test_java_client_accepts_the_certificate_with_the_hs_site_key(server: InProcessHttp, tmp_path: Path,
                                                                  https_resolver: tuple[str, ...]) -> None:
    site = site_with_only(server_dir(server), "HTTPS", server.port, tmp_path / "siteinfo.json")
    run = run_java("hdl-java", *https_resolver, site, "TEST/hello")
    assert run.returncode == 0, run.describe()
    assert "rc=1" in run.stdout and 'type=URL rwr- "https://www.handle.net/"' in run.stdout, run.describe()


def test_java_client_refuses_a_certificate_with_another_key(tmp_path: Path, https_resolver: tuple[str, ...]) -> None:
    directory = tmp_path / "srv"
    http_server_dir(directory)
    other = keys.generate_key_pair("RSA", 2048)
    (directory / CERTIFICATE_FILE).write_bytes(self_signed_certificate(other).public_bytes(Encoding.PEM))
    keys.save_private_key(directory / CERTIFICATE_KEY_FILE, other, None)
    with in_process_http(directory) as srv:
        site = site_with_only(directory, "HTTPS", srv.port, tmp_path / "siteinfo.json")
        run = run_java("hdl-java", *https_resolver, site, "TEST/hello")
    assert run.returncode != 0
    assert "public key does not match expected public key" in run.output, run.describe()


def test_java_client_accepts_any_certificate_from_a_dsa_server(tmp_path: Path,
                                                               https_resolver: tuple[str, ...]) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory, extra=("--key-algorithm", "DSA"))
    add_http_interface(directory, free_port())
    with in_process_http(directory) as srv:
        site = site_with_only(directory, "HTTPS", srv.port, tmp_path / "siteinfo.json")
        run = run_java("hdl-java", *https_resolver, site, "TEST/hello")
    assert run.returncode == 0, run.describe()
    assert "rc=1" in run.stdout, run.describe()
