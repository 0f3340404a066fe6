"""The budget of remote group lookups in one authorization check (hdlserver.core.remote_identity.RemoteGroups)."""

from __future__ import annotations

import pytest

from hdlserver.core import remote_identity
from hdlserver.core.remote_identity import MAX_REMOTE_GROUP_LOOKUPS, REMOTE_GROUP_SECONDS, RemoteGroups
from hdlserver.errors import ProtocolError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.values import HandleValue

GROUP_VALUE = HandleValue(200, b"HS_VLIST", b"\x00\x00\x00\x00")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Replaces the network fetch; records which handles were fetched."""
    calls: list[bytes] = []

    def public_values(self: remote_identity.RemoteIdentities) -> list[HandleValue]:
        calls.append(self.handle)
        if self.handle.startswith(b"FAIL/"):
            raise ProtocolError(ResponseCode.AUTHEN_ERROR, "unreachable")
        return [GROUP_VALUE]

    monkeypatch.setattr(remote_identity.RemoteIdentities, "public_values", public_values)
    return calls


def groups(clock: Clock) -> RemoteGroups:
    return RemoteGroups(store=None, homed=None, clock=clock)  # type: ignore[arg-type]  # the fetch is replaced


def test_lookups_stop_at_the_count_limit(fetched: list[bytes]) -> None:
    lookup = groups(Clock())
    answers = [lookup.values(f"G/{i}".encode(), 200) for i in range(MAX_REMOTE_GROUP_LOOKUPS + 3)]
    assert answers[:MAX_REMOTE_GROUP_LOOKUPS] == [[GROUP_VALUE]] * MAX_REMOTE_GROUP_LOOKUPS
    assert answers[MAX_REMOTE_GROUP_LOOKUPS:] == [None] * 3
    assert len(fetched) == MAX_REMOTE_GROUP_LOOKUPS


def test_no_lookup_starts_after_the_time_budget(fetched: list[bytes]) -> None:
    clock = Clock()
    lookup = groups(clock)
    assert lookup.values(b"G/first", 200) == [GROUP_VALUE]
    clock.now += REMOTE_GROUP_SECONDS
    assert lookup.values(b"G/late", 200) is None
    assert fetched == [b"G/first"]


def test_a_failing_group_contributes_nothing(fetched: list[bytes]) -> None:
    lookup = groups(Clock())
    assert lookup.values(b"FAIL/group", 200) is None
    assert lookup.values(b"G/next", 200) == [GROUP_VALUE]  # and the search goes on
