"""Throughput of the CAD import and of the what-if decision, on the real exports.

    python bench/import_replay.py            # both exports, best of 3
    python bench/import_replay.py --quick    # one pass over the San José sample (CI smoke)

Prints, per export, rows per second for the import alone (CSV -> sorted ``call.received``
events) and for the import plus JSON-lines encoding (what ``heart import --jsonl`` does),
then decisions per second for the what-if (``decide`` under the mapping's demo policy,
tallied as ``heart whatif`` does). The exports are found in ``$HEART_SHARED_DATA``, else
the copy kept in the repository's ``data/``; when they are missing a synthetic export in
Milwaukee's format stands in, and the line says so.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on the path unless the package is installed.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from heart.agents.triage.whatif import compare  # noqa: E402
from heart.cad.importer import import_rows  # noqa: E402
from heart.cad.mapping import load_mapping  # noqa: E402
from heart.cli.import_calls import write_jsonl  # noqa: E402

T = TypeVar("T")


@dataclass(frozen=True)
class Export:
    file: str
    mapping: str


EXPORTS = (
    Export("milwaukee-2018-05-calls.csv", "milwaukee-2018"),
    Export("sanjose-2024-calls-sample.csv", "sanjose-2024"),
)


def data_dir() -> Path:
    configured = os.environ.get("HEART_SHARED_DATA")
    return Path(configured) if configured else ROOT / "data"


def synthetic_milwaukee(path: Path, rows: int, seed: int = 2018) -> Path:
    """A Milwaukee-format export, shuffled in time, with the real file's kinds of types."""
    rng = random.Random(seed)
    natures = ["TRAFFIC STOP", "WELFARE CITIZEN", "TRBL W/SUBJ", "NOISE NUISANCE"]
    natures += ["BUSINESS CHECK", "SUBJ WITH WEAPON", "BATTERY", "FOLLOW UP"]
    start = datetime(2018, 5, 1)
    with path.open("w", encoding="utf-8") as out:
        out.write("id,time,location,latitude,longitude,district,nature,status\n")
        for n in range(rows):
            at = start + timedelta(seconds=rng.randrange(21 * 86_400))
            out.write(
                f'{1_000_000 + n},{at:%Y-%m-%d %H:%M:%S},"{n} W EXAMPLE ST,MKE",43.05,-87.95,'
                f"{rng.randint(1, 7)},{rng.choice(natures)},Advised\n"
            )
    return path


def best(runs: int, work: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``runs`` timings, and the last result."""
    fastest = float("inf")
    result: T | None = None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        fastest = min(fastest, time.perf_counter() - started)
    assert result is not None
    return fastest, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one pass, San José sample only")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else 3
    exports = EXPORTS[1:] if args.quick else EXPORTS

    print(f"heart import / what-if throughput ({'quick, 1 run' if args.quick else 'best of 3'})")
    with tempfile.TemporaryDirectory() as scratch:
        for export in exports:
            mapping = load_mapping(export.mapping)
            path = data_dir() / export.file
            note = ""
            if not path.is_file():
                note = f"  (synthetic: {export.file} not found in {path.parent})"
                mapping = load_mapping("milwaukee-2018")
                size = 5_000 if args.quick else 34_000
                path = synthetic_milwaukee(Path(scratch) / "synthetic.csv", size)

            seconds, result = best(runs, lambda p=path, m=mapping: import_rows(p, m))
            print(
                f"import   {path.name:32} {result.rows:>7,} rows    {seconds:6.2f} s "
                f"{result.rows / seconds:>9,.0f} rows/s{note}"
            )

            def to_jsonl(p: Path = path, m=mapping) -> int:
                imported = import_rows(p, m)
                write_jsonl(imported.events, io.BytesIO())
                return imported.rows

            seconds, rows = best(runs, to_jsonl)
            print(
                f"  +jsonl {path.name:32} {rows:>7,} rows    {seconds:6.2f} s "
                f"{rows / seconds:>9,.0f} rows/s"
            )

            policy = mapping.load_policy()
            events = result.events
            seconds, whatif = best(runs, lambda e=events, p=policy: compare(e, [("demo", p)]))
            decisions = whatif.calls
            print(
                f"what-if  {mapping.name + ' x ' + policy.name:32} {decisions:>7,} decisions "
                f"{seconds:6.2f} s {decisions / seconds:>9,.0f} decisions/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
