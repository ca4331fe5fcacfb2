"""The floor section: what every stage is compared with, over pre-filled 300-byte JSON
messages. A raw aiokafka consume -> JSON transform -> produce relay (``bench.rawhop``), a
plain Faust passthrough agent with the project's own settings (``bench.passthrough``) and
the stages' runtime without their logic (``bench.passthrough --runtime``)."""

from __future__ import annotations

from pathlib import Path

from bench import workload
from bench.common import Bench
from bench.harness import Proc
from bench.passthrough import IN, OUT
from bench.throughput import FLOORS, Spec, Subject, Subjects, every


def spec(bench: Bench, what: str, prefix: str, code: Path) -> Spec:
    """What a floor run sends and where; the source tree makes no difference."""
    if what == "raw":
        n, seed, src, dst, group = bench.sizes.raw, 1, "raw.in", "raw.out", "rawhop-raw"
    elif what in ("passthrough", "runtime"):
        n, seed, src, dst, group = bench.sizes.passthrough, 2, IN, OUT, f"heart-bench-{what}"
    else:
        raise ValueError(what)
    out = [(f"{prefix}{dst}", 6, every)]
    return Spec(
        n=n,
        records=lambda: workload.filler(n, seed=seed),
        source=(f"{prefix}{src}", 6),
        plain=[f"{prefix}{src}", f"{prefix}{dst}"],
        group=f"{prefix}{group}",
        internal=[],
        start=out,
        end=out,
        input="300-byte JSON messages",
    )


def proc(bench: Bench, what: str, code: Path, prefix: str) -> Proc:
    if what == "raw":
        return bench.rawhop("raw", "raw.in", "raw.out", prefix)
    if what == "passthrough":
        return bench.fleet.module("passthrough", "bench.passthrough", prefix, code=code)
    if what == "runtime":
        return bench.fleet.module("runtime", "bench.passthrough", prefix, "--runtime", code=code)
    raise ValueError(what)


SUBJECTS: Subjects = {what: Subject(spec, proc) for what in FLOORS}
