"""Deterministic event ids: ``uuid.uuid5(namespace, name).hex``, computed cheaply.

Every stage names the events it emits by a uuid5 of what caused them, so that an event
re-emitted after a crash keeps its id and consumers drop the repeat. ``uuid.uuid5``
builds a ``UUID`` object on the way to its hex form, about 5.6 µs per id against 1.8 µs
here, on a path that runs for every event; the result is the same string.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["uuid5_hex"]


def uuid5_hex(namespace: uuid.UUID, name: str) -> str:
    """``uuid.uuid5(namespace, name).hex``."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return digest.hex()
