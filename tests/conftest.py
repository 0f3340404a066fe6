"""Shared fixtures: a real hdlserver process on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, setup_server_dir, start_server

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for read-only tests: prefix TEST, admin secret 'secret', sample handle TEST/hello."""
    directory = tmp_path_factory.mktemp("hdlserver") / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    yield server
    server.stop()
