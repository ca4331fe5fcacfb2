"""The ``heart`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from heart.streams.settings import HeartSettings, SettingsError

log = logging.getLogger("heart")


def _cmd_broker(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.streams.embedded.broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port, host=args.host, log_file=args.log_file)
    broker.start()
    print(f"embedded broker listening on {broker.bootstrap} (Ctrl-C stops it)", flush=True)
    print(f"export HEART_KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if not broker.running():
                print("embedded broker exited unexpectedly", file=sys.stderr)
                return 1
    finally:
        broker.stop()
    print("embedded broker stopped", flush=True)
    return 0


def _cmd_topics(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.streams.admin import all_topics, create_topics, describe_topics

    if args.action == "create":
        result = asyncio.run(create_topics(settings))
        for name, state in result.items():
            print(f"{state:8} {name}")
        return 0
    present = asyncio.run(describe_topics(settings))
    for spec in all_topics():
        name = spec.full_name(settings.topic_prefix)
        where = f"{present[name]} partitions" if name in present else "missing"
        print(f"{name:28} key={spec.key:12} {where:14} {spec.description}")
    return 0


def _cmd_schemas(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.schemas.registry import export_json_schemas
    from heart.streams.topics import CATALOG

    topics = {name: spec.value for name, spec in CATALOG.items()}
    for path in export_json_schemas(args.dir, topics):
        print(path)
    return 0


def _cmd_worker(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.agents.registry import STAGES
    from heart.cli.worker import run_worker
    from heart.streams.metrics import MetricsPortError

    if args.stage not in STAGES:
        print(
            f"heart worker: unknown stage {args.stage!r}; the stages are: "
            f"{', '.join(sorted(STAGES))}",
            file=sys.stderr,
        )
        return 2
    try:
        run_worker(args.stage, settings, loglevel=args.loglevel)
    except MetricsPortError as exc:
        print(f"heart worker {args.stage}: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_decide(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.decide import run
    from heart.policy import PolicyError, load_policy

    try:
        policy = load_policy(args.policy or settings.policy)
    except PolicyError as exc:
        print(f"heart decide: {exc}", file=sys.stderr)
        return 2
    return run(args.file, policy)


def _cmd_up(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.up import run_up

    return asyncio.run(
        run_up(
            settings,
            speed=args.speed,
            duration=args.duration,
            status_every=args.status_every,
            simulate=not args.no_sim,
            seed=args.seed,
            log_dir=args.log_dir,
            metrics_port=args.metrics_port,
        )
    )


def _cmd_simulate(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.up import run_simulation

    return asyncio.run(
        run_simulation(
            settings,
            speed=args.speed,
            duration=args.duration,
            status_every=args.status_every,
            seed=args.seed,
        )
    )


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--speed must be 'max' or a number, not {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--speed must be positive, not {text!r}")
    return value


def _cmd_replay(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.replay import run_replay

    return asyncio.run(
        run_replay(
            settings,
            args.file,
            args.mapping,
            policy_path=args.policy,
            roster_path=args.roster,
            speed=args.speed,
            out_dir=args.out,
            log_dir=args.log_dir,
        )
    )


def _cmd_report(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.report import run_report

    return run_report(settings, args.month, args.out)


def _cmd_import(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.import_calls import run_import

    out = "topic" if args.to_topic else ("-" if args.jsonl in (None, "-") else Path(args.jsonl))
    return run_import(settings, args.file, args.mapping, out=out)


def _cmd_whatif(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.whatif import parse_teams, run_whatif

    try:
        teams = parse_teams(args.teams)
    except ValueError as exc:
        print(f"heart whatif: {exc}", file=sys.stderr)
        return 2
    return run_whatif(
        args.file,
        args.mapping,
        args.policy,
        out_dir=args.out,
        travel_minutes=args.travel_minutes,
        on_scene_minutes=args.on_scene_minutes,
        teams=teams,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heart",
        description="HEART Stream: route every 911 call to the right responder.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--log-file", type=Path, default=None)
    p.set_defaults(func=_cmd_broker)

    p = sub.add_parser("topics", help="create or list the catalog's topics")
    p.add_argument("action", choices=["create", "list"])
    p.set_defaults(func=_cmd_topics)

    p = sub.add_parser("schemas", help="export the wire contract as JSON Schema")
    schemas_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    e = schemas_sub.add_parser("export", help="write one JSON Schema per event into DIR")
    e.add_argument("dir", type=Path)
    e.set_defaults(func=_cmd_schemas)

    p = sub.add_parser("worker", help="run one stage as a Faust worker")
    p.add_argument("stage", help="the stage to run, e.g. triage")
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("up", help="run everything on one machine with a simulated city")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--status-every", type=float, default=5.0, help="seconds between status lines")
    p.add_argument("--no-sim", action="store_true", help="run the stages without the simulator")
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--log-dir", type=Path, default=None)
    p.add_argument("--metrics-port", type=int, default=9101, help="first stage's metrics port")
    p.set_defaults(func=_cmd_up)

    p = sub.add_parser("simulate", help="run only the simulated city against running stages")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--status-every", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=2022)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("report", help="write the monthly pilot report (HTML + JSON) for a month")
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="in the policy's time zone")
    p.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="default: .")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "replay", help="send a CAD export through the pipeline on event time, then report"
    )
    p.add_argument("file", type=Path, help="the CAD export (CSV)")
    p.add_argument("--mapping", required=True, help="mapping file or shipped name")
    p.add_argument("--policy", type=Path, default=None, help="policy (default: the mapping's)")
    p.add_argument("--roster", type=Path, default=None, help="roster (default: the mapping's)")
    p.add_argument("--speed", type=_speed, default=None, help="'max' (default) or event s/wall s")
    p.add_argument("--out", type=Path, default=Path("replay-out"))
    p.add_argument("--log-dir", type=Path, default=None)
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser(
        "decide", help="decide call.received JSON lines with a policy, one decision per line"
    )
    p.add_argument("--policy", type=Path, default=None, help="policy TOML (default: Durham)")
    p.add_argument("file", nargs="?", default="-", help="JSON lines file, or - for stdin")
    p.set_defaults(func=_cmd_decide)

    p = sub.add_parser(
        "import", help="convert a CAD export into call.received events, in time order"
    )
    p.add_argument("file", type=Path, help="the CAD calls-for-service export (CSV)")
    p.add_argument(
        "--mapping",
        required=True,
        help="mapping file, or a shipped mapping's name (milwaukee-2018, sanjose-2024)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--jsonl", metavar="OUT", default=None, help="write JSON lines to OUT, or - for stdout"
    )
    where.add_argument(
        "--to-topic", action="store_true", help="produce to cad.calls instead (HEART_* settings)"
    )
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("whatif", help="compare policies on the same real calls (no broker)")
    p.add_argument("file", type=Path, help="the CAD calls-for-service export (CSV)")
    p.add_argument("--mapping", required=True, help="mapping file or shipped mapping name")
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="POLICY",
        help="policy file or shipped name; repeat to compare (default: the mapping's demo)",
    )
    p.add_argument("--out", type=Path, default=Path("whatif-out"), help="report directory")
    p.add_argument("--travel-minutes", type=float, default=7.6, help="mean travel per team call")
    p.add_argument(
        "--on-scene-minutes", type=float, default=45.0, help="mean time on scene (assumed)"
    )
    p.add_argument(
        "--teams",
        action="append",
        default=[],
        metavar="PILOT=N",
        help="teams (or seats) on shift per pilot, e.g. crt=3; 1 each by default",
    )
    p.set_defaults(func=_cmd_whatif)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = HeartSettings.from_env()
    except SettingsError as exc:
        print(f"heart: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's last line of defence: one clear line, no traceback
        from heart.streams.embedded.broker import BrokerError

        if isinstance(exc, BrokerError | OSError | ValueError):
            print(f"heart {args.command}: {exc}", file=sys.stderr)
            return 1
        raise
