"""Local ports: free ones to listen on, and whether something already listens."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Port picks must not follow a test's or a simulation's seeded global random state.
_port_random = random.Random()


def ephemeral_ports() -> range:
    """The ports the kernel gives the local end of outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def find_free_port(host: str = "127.0.0.1", count: int = 1) -> int:
    """The first of ``count`` consecutive ports free to listen on.

    Picked outside the ephemeral range, not by binding port 0: a port in that range can be
    taken at any moment as the local end of an outgoing connection (every Kafka client makes
    several), and a listener can then no longer bind it.
    """
    ephemeral = ephemeral_ports()
    below = range(10_000, ephemeral.start - count + 1)
    above = range(ephemeral.stop, 65_536 - count + 1)
    candidates = max(below, above, key=len)
    if len(candidates) < 1_000:
        candidates = range(1_024, 65_536 - count + 1)
    for _ in range(1_000):
        first = _port_random.choice(candidates)
        if all(can_listen(host, port) for port in range(first, first + count)):
            return first
    raise OSError(f"no {count} consecutive free ports found on {host}")


def can_listen(host: str, port: int, *, reuse: bool = False) -> bool:
    """Whether a listener could bind ``port`` now (nothing listens on it or uses it).

    ``reuse`` asks as a server that sets ``SO_REUSEADDR`` would (prometheus-client's
    does): a connection lingering in TIME_WAIT after a scrape does not count as a use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
