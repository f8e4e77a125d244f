"""The machines of `tests.netns`: each in its own network namespace reaches PostgreSQL only through its veth pair,
not the host's loopback nor another machine; everything is gone afterwards, and a dead run's namespaces are removed
by the next."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.netns import PREFIX, machines

pytestmark = [pytest.mark.postgres]
CONNECT = "import sys, psycopg; print(psycopg.connect(sys.argv[1]).execute('SELECT 1 + 1').fetchone()[0])"


@pytest.fixture()
def upstream(postgres_url: str) -> Iterator[tuple[str, int]]:
    url = sa.engine.make_url(postgres_url)
    yield url.host or "127.0.0.1", url.port or 5432


def _namespaces() -> set[str]:
    return {line.split(" ")[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                          check=True).stdout.splitlines()}


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def test_machines_reach_the_database_only_over_their_veth(postgres_url: str, upstream: tuple[str, int]) -> None:
    with machines(("a", "b"), upstream) as net:
        if net.reason:
            pytest.skip(f"no network namespaces here: {net.reason}")
        a, b = net.machines["a"], net.machines["b"]
        assert a.netns and b.netns and a.netns != b.netns and a.address != b.address
        for host in (a, b):
            assert host.reach(*upstream) is not None  # the host's loopback is not this machine's
            assert host.reach(*host.upstream) is None
        assert a.reach(b.address, 22) is not None and "unreachable" in str(a.reach(*b.upstream))
        url = sa.engine.make_url(postgres_url).set(drivername="postgresql", host=a.upstream[0], port=a.upstream[1])
        assert subprocess.run(a.argv([sys.executable, "-c", CONNECT, url.render_as_string(hide_password=False)]),
                              capture_output=True, text=True, check=True, timeout=60).stdout.strip() == "2"
        assert net.forwarded["a"] >= 2 and net.forwarded["b"] == 1
        made = {a.netns, b.netns}
        assert made <= _namespaces()
    assert not made & _namespaces()
    assert not [line for line in _links().splitlines() if a.netns.split("-")[2] in line]


def test_a_dead_runs_namespaces_are_removed() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{PREFIX}-{dead.pid}-abcdef-server"
    if subprocess.run(["ip", "netns", "add", stale], capture_output=True).returncode != 0:
        pytest.skip("no network namespaces here (`ip netns add` refused)")
    try:
        with machines(("server",), ("127.0.0.1", 5432)) as net:
            assert net.reason is None and stale not in _namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


def test_without_namespaces_the_machines_share_the_hosts_network(monkeypatch: pytest.MonkeyPatch,
                                                                 upstream: tuple[str, int]) -> None:
    monkeypatch.setenv("NAS_TEST_NETNS", "0")
    with machines(("a", "b"), upstream) as net:
        assert net.reason == "NAS_TEST_NETNS=0"
        assert all(m.netns is None and m.upstream == upstream for m in net.machines.values())
        assert net.machines["a"].argv(["nas", "worker"]) == ["nas", "worker"]
        assert net.machines["a"].reach(*upstream) is None
