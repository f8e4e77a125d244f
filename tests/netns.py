"""Machines for tests that run processes as if on separate hosts, each in its own network namespace.

`machines(names, upstream)` gives each name a network namespace of its own with a veth pair to the host's namespace
(10.200.X.0/30: the host's end .1, the machine's `eth0` .2, loopback up, no other route), and forwards TCP from an
address on the host's end of each pair to `upstream` (the PostgreSQL server): a machine reaches the database only
over its veth, and the host reaches a machine at its `address`. Namespaces, veth pairs and the forwarder are removed
on exit, after a failure too; namespaces left by a run that died (their names carry its pid) are removed first.

Where namespaces cannot be made (not root, a container without CAP_NET_ADMIN, no iproute2), or with
NAS_TEST_NETNS=0, every machine shares the host's network and `Network.reason` says why.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

PREFIX = "nastest"
_STALE = re.compile(rf"{PREFIX}-(\d+)-[0-9a-f]+-\S+")
_PROBE = ("import socket, sys\n"
          "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
          "except OSError as exc:\n    print(type(exc).__name__, exc)\n    sys.exit(1)\n")


@dataclass(frozen=True)
class Machine:
    name: str
    netns: str | None  # None: the host's network
    address: str  # where the host reaches this machine
    upstream: tuple[str, int]  # where this machine reaches the upstream server

    def argv(self, args: Sequence[str]) -> list[str]:
        """ARGS run on this machine (`ip netns exec` replaces itself by ARGS: signals reach the process)."""
        return ["ip", "netns", "exec", self.netns, *args] if self.netns else list(args)

    def reach(self, host: str, port: int) -> str | None:
        """None if a TCP connection from this machine to HOST:PORT opens, else the error."""
        done = subprocess.run(self.argv([sys.executable, "-c", _PROBE, host, str(port)]), capture_output=True,
                              text=True, timeout=30)
        return None if done.returncode == 0 else (done.stdout.strip() or done.stderr.strip())


@dataclass
class Network:
    machines: dict[str, Machine]
    reason: str | None  # why the machines share the host's network; None when each has its own namespace
    forwarded: Counter[str] = field(default_factory=Counter)  # connections forwarded per machine


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_stale() -> list[str]:
    """Remove the namespaces (and with them their veth pairs) of runs whose process is gone; their names."""
    listed = _ip("netns", "list").stdout.split("\n")
    stale = [m[0] for line in listed if (m := _STALE.fullmatch(line.split(" ")[0])) and not _alive(int(m[1]))]
    for name in stale:
        _ip("netns", "del", name)
    return stale


def _free_subnets(count: int) -> list[int]:
    used = set(re.findall(r"inet 10\.200\.(\d+)\.", _ip("-4", "-o", "addr").stdout))
    return [x for x in range(256) if str(x) not in used][:count]


class _Forwarder:
    """TCP from listening addresses on the host to one upstream address, in a thread with its own event loop."""

    def __init__(self, upstream: tuple[str, int], counts: Counter[str]) -> None:
        self.upstream, self.counts = upstream, counts
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="netns-forwarder", daemon=True)
        self.servers: list[asyncio.Server] = []
        self.thread.start()

    def listen(self, host: str, label: str) -> int:
        async def start() -> asyncio.Server:
            return await asyncio.start_server(lambda r, w: self._serve(label, r, w), host, 0)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=30)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _serve(self, label: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts[label] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy until either side ends; closing the other end then ends the pipe the other way (a killed client
        closes its server connection, as it would without the forwarder)."""
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def _shared(names: Sequence[str], upstream: tuple[str, int], reason: str) -> Network:
    return Network({n: Machine(n, None, "127.0.0.1", upstream) for n in names}, reason)


@contextmanager
def machines(names: Sequence[str], upstream: tuple[str, int]) -> Iterator[Network]:
    """A machine per name, each in its own network namespace reaching UPSTREAM over its veth pair (see the module
    docstring), or all on the host's network with the reason."""
    if os.environ.get("NAS_TEST_NETNS") == "0":
        yield _shared(names, upstream, "NAS_TEST_NETNS=0")
        return
    try:
        remove_stale()
    except FileNotFoundError:
        yield _shared(names, upstream, "no `ip` command (iproute2) to make network namespaces")
        return
    token = secrets.token_hex(3)
    made: list[tuple[str, str]] = []  # (namespace, host end of its veth pair)
    network = Network({}, None)
    forwarder: _Forwarder | None = None
    try:
        subnets = _free_subnets(len(names))
        if len(subnets) < len(names):
            raise OSError("no free 10.200.X.0/30 subnets left for the veth pairs")
        for i, (name, x) in enumerate(zip(names, subnets, strict=True)):
            netns, host_end = f"{PREFIX}-{os.getpid()}-{token}-{name}", f"nt{token}{i}h"
            steps = [("netns", "add", netns),
                     ("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", netns),
                     ("addr", "add", f"10.200.{x}.1/30", "dev", host_end), ("link", "set", host_end, "up"),
                     ("-n", netns, "addr", "add", f"10.200.{x}.2/30", "dev", "eth0"),
                     ("-n", netns, "link", "set", "eth0", "up"), ("-n", netns, "link", "set", "lo", "up")]
            for step in steps:
                done = _ip(*step)
                if step[:2] == ("netns", "add") and done.returncode == 0:
                    made.append((netns, host_end))
                if done.returncode != 0:
                    raise OSError(f"`ip {' '.join(step)}` failed: {done.stderr.strip()}")
            if forwarder is None:
                forwarder = _Forwarder(upstream, network.forwarded)
            port = forwarder.listen(f"10.200.{x}.1", name)
            network.machines[name] = Machine(name, netns, f"10.200.{x}.2", (f"10.200.{x}.1", port))
    except OSError as exc:
        _teardown(made, forwarder)
        made, forwarder = [], None
        network = _shared(names, upstream, str(exc))
    try:
        yield network
    finally:
        _teardown(made, forwarder)


def _teardown(made: list[tuple[str, str]], forwarder: _Forwarder | None) -> None:
    if forwarder is not None:
        forwarder.close()
    for netns, host_end in made:
        _ip("link", "del", host_end)  # at once, even if a process still holds the namespace
        _ip("netns", "del", netns)
