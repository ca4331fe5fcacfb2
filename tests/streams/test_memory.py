"""Free heap pages go back to the OS (streams/memory.py), and the interval is a setting."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streams.memory import malloc_trim
from streams.settings import HeartSettings, SettingsError

# Scattered free space, as a worker's heap has it: many large buffers freed with a live
# one every tenth, so no free run reaches the top of the heap, where glibc trims by itself.
FRAGMENT = """
import json, sys
from streams.memory import release_free_memory

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


# Large buffers freed between live small objects, after glibc has seen a 4 MiB one freed.
LARGE_BUFFERS = """
import json, sys
from streams.memory import keep_large_buffers_out_of_the_heap

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "fixed":
    assert keep_large_buffers_out_of_the_heap()
big = bytearray(4 << 20)
del big
buffers, live = [], []
for _ in range(200):
    buffers.append(bytearray(300_000))
    live.append(bytearray(2_000))
before = rss_mib()
del buffers
print(json.dumps({"before": before, "after": rss_mib()}))
"""


def _freed_mib(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", LARGE_BUFFERS, mode], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(out)
    return float(figures["before"] - figures["after"])


@pytest.mark.skipif(malloc_trim() is None, reason="the C library is not glibc")
def test_large_buffers_kept_out_of_the_heap_are_returned_when_freed() -> None:
    # 200 buffers of 300 KB, about 57 MiB. By default glibc has raised its threshold to
    # 4 MiB when the big buffer was freed, so they come from the heap and stay resident;
    # with the threshold fixed each has its own mapping, unmapped on free.
    assert _freed_mib("default") < 10
    assert _freed_mib("fixed") > 45


def test_the_release_interval_is_a_setting_and_zero_turns_it_off() -> None:
    assert HeartSettings.from_env({}).memory_release_interval_s == 60.0
    assert (
        HeartSettings.from_env({"HEART_MEMORY_RELEASE_INTERVAL_S": "0"}).memory_release_interval_s
        == 0
    )
    with pytest.raises(SettingsError, match="HEART_MEMORY_RELEASE_INTERVAL_S"):
        HeartSettings.from_env({"HEART_MEMORY_RELEASE_INTERVAL_S": "-1"})
