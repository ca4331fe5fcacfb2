"""Free heap pages go back to the OS (streams/memory.py), and the interval is a setting."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from heart.streams.memory import malloc_trim
from heart.streams.settings import HeartSettings, SettingsError

# Scattered free space, as a worker's heap has it: many large buffers freed with a live
# one every tenth, so no free run reaches the top of the heap, where glibc trims by itself.
FRAGMENT = """
import json, sys
from heart.streams.memory import release_free_memory

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

buffers = [bytes(bytearray(4000)) for _ in range(40_000)]
kept = buffers[::10]
del buffers
before = rss_mib()
released = release_free_memory()
print(json.dumps({"before": before, "after": rss_mib(), "released": released, "kept": len(kept)}))
"""


@pytest.mark.skipif(malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)")
def test_free_pages_scattered_through_the_heap_are_handed_back() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(out)
    # About 140 MiB freed between the 4,000 buffers still alive; glibc keeps it resident
    # until the trim.
    assert figures["released"] is True
    assert figures["before"] - figures["after"] > 100, figures


def test_the_release_interval_is_a_setting_and_zero_turns_it_off() -> None:
    assert HeartSettings.from_env({}).memory_release_interval_s == 60.0
    assert (
        HeartSettings.from_env({"HEART_MEMORY_RELEASE_INTERVAL_S": "0"}).memory_release_interval_s
        == 0
    )
    with pytest.raises(SettingsError, match="HEART_MEMORY_RELEASE_INTERVAL_S"):
        HeartSettings.from_env({"HEART_MEMORY_RELEASE_INTERVAL_S": "-1"})
