"""The ``heart`` command line.

Every command shares one exit-status convention (:data:`EXIT_STATUSES`, shown by
``heart --help``) and one last line of defence: an error a person can act on ends the
command with one line naming the problem and the fix, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from heart.cli.options import non_negative_float, port, positive_float, share, speed_or_max
from heart.cli.reject_limit import DEFAULT_MAX_REJECT_RATE
from heart.streams.settings import HeartSettings, SettingsError

log = logging.getLogger("heart")

#: The distribution ``heart --version`` reports.
DISTRIBUTION = "heart-stream"

#: Help of ``--duration``, whose absence means "until stopped".
RUN_UNTIL_STOPPED = "stop after this many seconds (default: run until Ctrl-C)"

#: Exit status when the reader of our output went away (``| head``): what a shell reports
#: for any Unix tool ended by SIGPIPE (128 + 13), so ``set -o pipefail`` sees the same.
BROKEN_PIPE_EXIT = 141

EXIT_STATUSES = """\
exit status:
  0    done
  1    the command ran but could not finish: a file it could not read or write, a
       month with no report, a replay whose figures did not catch up
  2    usage: a bad option value, or an unusable mapping, policy or setting (named)
  65   import, whatif, staffing: no row of the export became a call, or more than
       --max-reject-rate of the rows were rejected (the mapping does not fit)
  69   the Kafka broker cannot be reached: start `heart broker` (or `heart up`), or
       set HEART_KAFKA_BOOTSTRAP to a running broker
  75   worker: table recovery stalled; restart the worker
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (e.g. `| head`); the rest was not written
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default after its help, unless the help already says what
    happens without it (a default of None) or there is none (a flag, a required option);
    descriptions and epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or action.required
            or action.default in (None, False, [], argparse.SUPPRESS)
        ):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every ``heart`` parser, subcommands included, shows defaults the same way."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]


class StagesHelp(argparse.Action):
    """``heart worker --help``: the stages are listed only when help is asked for, since
    reading the registry loads Faust (about 2 s) and every other run of ``heart`` would
    pay for it."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show this help message, with the stages, and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from heart.agents.registry import STAGES

        parser.epilog = "stages:\n" + "\n".join(
            textwrap.fill(
                _stage_summary(STAGES[name]),
                width=79,
                initial_indent=f"  {name:11} ",
                subsequent_indent=" " * 14,
            )
            for name in sorted(STAGES)
        )
        parser.print_help()
        parser.exit()


def _stage_summary(module_name: str) -> str:
    """What a stage does: its agent module's opening sentence, after "The ... stage:"."""
    import importlib

    doc = (importlib.import_module(module_name).__doc__ or "").strip()
    first = re.split(r"(?<=[.;])\s", " ".join(doc.split("\n\n")[0].split()), maxsplit=1)[0]
    summary = first.partition(": ")[2] or first or module_name
    return summary.replace("``", "").rstrip(".;")


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown (not installed)"


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
            f"{', '.join(sorted(STAGES))} (see heart worker --help)",
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
    from heart.cli.progress import configure_logs
    from heart.cli.up import run_up

    configure_logs(args.log_level, verbose=args.verbose)
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
            console=not args.no_console,
            console_port=args.console_port,
        )
    )


def _cmd_console(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.console.server import run_console

    return run_console(
        settings,
        host=args.host,
        port=args.port,
        users_path=args.users,
        settings_path=args.settings,
        secure_cookies=args.secure_cookies,
        secret_file=args.secret_file,
        trusted_proxies=args.trusted_proxy or (),
        proxy_user_header=args.trust_proxy_header,
    )


def _cmd_console_add_user(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.console.users import add_user_command

    return add_user_command(
        args.users,
        user_id=args.id,
        name=args.name,
        role=args.role,
        team_id=args.team,
        no_password=args.no_password,
        stdin=sys.stdin,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


def _trusted_proxy(text: str) -> object:
    """A ``--trusted-proxy`` value, checked when the options are read."""
    from heart.cli.console.users import proxy_network

    try:
        return proxy_network(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_simulate(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.progress import configure_logs
    from heart.cli.up import run_simulation

    configure_logs(args.log_level, verbose=args.verbose)
    return asyncio.run(
        run_simulation(
            settings,
            speed=args.speed,
            duration=args.duration,
            status_every=args.status_every,
            seed=args.seed,
        )
    )


def _cmd_replay(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.progress import configure_logs
    from heart.cli.replay import run_replay

    configure_logs(args.log_level, verbose=args.verbose)
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
            seed=args.seed,
            max_reject_rate=args.max_reject_rate,
        )
    )


#: ``heart replay``'s default seed (heart.cli.replay.DEFAULT_SEED, without importing it).
REPLAY_SEED = 2022
STATUS_EVERY = (
    "seconds between status lines when output is not a terminal "
    "(a terminal gets one status display, updated in place)"
)


def _log_options(p: argparse.ArgumentParser) -> None:
    """``-v`` and ``--log-level`` for a long-running command (heart.cli.progress)."""
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show informational logs of HEART and its libraries (as --log-level info)",
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=None,
        help="log level of this process (default: warning; stage logs keep info)",
    )


def _cmd_report(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.report import run_report

    return run_report(settings, args.month, args.out)


def _cmd_import(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.import_calls import run_import

    out = "topic" if args.to_topic else ("-" if args.jsonl in (None, "-") else Path(args.jsonl))
    return run_import(
        settings, args.file, args.mapping, out=out, max_reject_rate=args.max_reject_rate
    )


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
        max_reject_rate=args.max_reject_rate,
        capacity=args.capacity,
        roster=args.roster,
        max_wait_minutes=args.max_wait_minutes,
        timings=args.timings,
        seed=args.seed,
    )


def _cmd_staffing(args: argparse.Namespace, settings: HeartSettings) -> int:
    from heart.cli.staffing import run_staffing

    return run_staffing(
        args.file,
        args.mapping,
        args.policy,
        target=args.target,
        teams_max=args.teams_max,
        max_wait_minutes=args.max_wait_minutes,
        time_on_call_minutes=args.time_on_call_minutes,
        timings=args.timings,
        seed=args.seed,
        json_out=args.json,
        out_dir=args.out,
        max_reject_rate=args.max_reject_rate,
    )


def _team_count(text: str) -> int:
    # Imported when the option is given: the capacity code is not loaded for other commands.
    from heart.cli.staffing import team_count

    return team_count(text)


#: ``heart whatif --capacity`` and ``heart staffing``'s default seed (the replay's too).
CAPACITY_SEED = 2022


def _add_max_reject_rate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-reject-rate",
        type=share,
        default=DEFAULT_MAX_REJECT_RATE,
        metavar="SHARE",
        help="fail (exit 65) when more than this share of the rows is rejected, 0-1; "
        "1 accepts any share, but an import with no call still fails",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="heart",
        description="HEART Stream: route every 911 call to the right responder.",
        epilog=EXIT_STATUSES,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=port, default=9092, help="port to listen on")
    p.add_argument(
        "--log-file", type=Path, default=None, help="the broker's log (default: no log file)"
    )
    p.set_defaults(func=_cmd_broker)

    p = sub.add_parser("topics", help="create or list the catalog's topics")
    p.add_argument(
        "action",
        choices=["create", "list"],
        help="create: every missing topic (idempotent); list: each topic and its partitions",
    )
    p.set_defaults(func=_cmd_topics)

    p = sub.add_parser("schemas", help="export the wire contract as JSON Schema")
    schemas_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    e = schemas_sub.add_parser("export", help="write one JSON Schema per event into DIR")
    e.add_argument("dir", type=Path, help="folder for the schemas (created if missing)")
    e.set_defaults(func=_cmd_schemas)

    p = sub.add_parser("worker", help="run one stage as a Faust worker", add_help=False)
    p.add_argument("-h", "--help", action=StagesHelp)
    p.add_argument("stage", help="the stage to run (listed below), e.g. triage")
    p.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the worker's log level",
    )
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("up", help="run everything on one machine with a simulated city")
    p.add_argument(
        "--speed", type=positive_float, default=60.0, help="simulated seconds per wall second"
    )
    p.add_argument("--duration", type=positive_float, default=None, help=RUN_UNTIL_STOPPED)
    p.add_argument("--status-every", type=positive_float, default=5.0, help=STATUS_EVERY)
    p.add_argument("--no-sim", action="store_true", help="run the stages without the simulator")
    p.add_argument("--seed", type=int, default=2022, help="the simulated city's random seed")
    p.add_argument("--log-dir", type=Path, default=None, help="stage logs (default: a temp dir)")
    p.add_argument("--metrics-port", type=port, default=9101, help="first stage's metrics port")
    p.add_argument(
        "--console-port",
        type=port,
        default=None,
        help="the web console's port (default 8600, or a free one when 8600 is taken)",
    )
    p.add_argument("--no-console", action="store_true", help="do not start the web console")
    _log_options(p)
    p.set_defaults(func=_cmd_up)

    p = sub.add_parser("simulate", help="run only the simulated city against running stages")
    p.add_argument(
        "--speed", type=positive_float, default=1.0, help="simulated seconds per wall second"
    )
    p.add_argument("--duration", type=positive_float, default=None, help=RUN_UNTIL_STOPPED)
    p.add_argument("--status-every", type=positive_float, default=10.0, help=STATUS_EVERY)
    p.add_argument("--seed", type=int, default=2022, help="the simulated city's random seed")
    _log_options(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser(
        "console", help="serve the live web console (board, teams, care navigation) from Kafka"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=port, default=8600, help="port to listen on")
    p.add_argument(
        "--users",
        type=Path,
        default=None,
        metavar="FILE",
        help="users who may sign in (default: the demo users, see docs/console.md)",
    )
    p.add_argument(
        "--settings",
        type=Path,
        default=None,
        metavar="FILE",
        help="alert thresholds and refresh (default: the shipped console.toml)",
    )
    p.add_argument(
        "--secure-cookies",
        action="store_true",
        help="send the session cookie over HTTPS only (set it behind a TLS proxy)",
    )
    p.add_argument(
        "--secret-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the key that signs sessions, shared by every replica (default: "
        "HEART_CONSOLE_SECRET, else a random key: sessions end at a restart)",
    )
    p.add_argument(
        "--trusted-proxy",
        type=_trusted_proxy,
        action="append",
        default=None,
        metavar="ADDRESS",
        help="a reverse proxy's address or network (repeatable): its X-Forwarded-For is "
        "believed, and its --trust-proxy-header (default: none)",
    )
    p.add_argument(
        "--trust-proxy-header",
        default=None,
        metavar="HEADER",
        help="single sign-on: the header in which a --trusted-proxy names the signed-in "
        "user's id, e.g. X-Remote-User (default: password sign-in only)",
    )
    p.set_defaults(func=_cmd_console)
    console_sub = p.add_subparsers(dest="console_command", metavar="SUBCOMMAND")
    a = console_sub.add_parser(
        "add-user",
        help="add or replace a user in a users file, with the password read from stdin",
        description="Add a user to a console users file (made when missing), or replace "
        "the user with the same id. The password is read from stdin, or asked twice without "
        "echo on a terminal, and stored as an argon2id hash.",
    )
    a.add_argument("--users", type=Path, required=True, metavar="FILE", help="the users file")
    a.add_argument("--id", required=True, help="opaque user id with a digit, e.g. nav-0002")
    a.add_argument("--name", required=True, help="display name, shown on the page only")
    a.add_argument(
        "--role",
        required=True,
        help="supervisor, clinician, team, navigator or analyst",
    )
    a.add_argument(
        "--team", default=None, help="the team id of a team user, e.g. CRT-1 (default: none)"
    )
    a.add_argument(
        "--no-password",
        action="store_true",
        help="no password: the user signs in only through single sign-on",
    )
    a.set_defaults(func=_cmd_console_add_user)

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
    p.add_argument("--speed", type=speed_or_max, help="'max' (default) or event s/wall s")
    p.add_argument("--out", type=Path, default=Path("replay-out"), help="report directory")
    p.add_argument("--log-dir", type=Path, default=None, help="stage logs (default: a temp dir)")
    p.add_argument(
        "--seed",
        type=int,
        default=REPLAY_SEED,
        help="seed of the simulated teams and navigators: the same seed, export, mapping, "
        "policy and roster give the same reports",
    )
    _log_options(p)
    _add_max_reject_rate(p)
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
        "--jsonl",
        metavar="OUT",
        default=None,
        help="write JSON lines to OUT, or - for stdout (default: stdout)",
    )
    where.add_argument(
        "--to-topic", action="store_true", help="produce to cad.calls instead (HEART_* settings)"
    )
    _add_max_reject_rate(p)
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
    p.add_argument(
        "--travel-minutes", type=non_negative_float, default=7.6, help="mean travel per team call"
    )
    p.add_argument(
        "--on-scene-minutes",
        type=non_negative_float,
        default=45.0,
        help="mean time on scene (assumed)",
    )
    p.add_argument(
        "--teams",
        action="append",
        default=[],
        metavar="PILOT=N",
        help="teams (or seats) on shift per pilot, e.g. crt=3; 1 each by default",
    )
    p.add_argument(
        "--capacity",
        action="store_true",
        help="model capacity: the teams on shift (--teams, during each pilot's hours) take "
        "the team calls; a call with no free team waits, then goes to police (missed: no "
        "team free)",
    )
    p.add_argument(
        "--roster",
        type=Path,
        default=None,
        help="model capacity with this roster's teams and shifts instead of --teams "
        "(default: no roster)",
    )
    p.add_argument(
        "--max-wait-minutes",
        type=non_negative_float,
        default=None,
        metavar="M",
        help="with capacity, the longest a team call waits for a team (default: each "
        "policy's max_queue_wait_minutes)",
    )
    p.add_argument(
        "--timings",
        type=Path,
        default=None,
        metavar="FILE",
        help="with capacity, times on call drawn from these dispatch events (JSON lines, as "
        "on dispatch.events; default: lognormal around the travel and on-scene minutes)",
    )
    p.add_argument(
        "--seed", type=int, default=CAPACITY_SEED, help="with capacity, the times on call's seed"
    )
    _add_max_reject_rate(p)
    p.set_defaults(func=_cmd_whatif)

    p = sub.add_parser(
        "staffing", help="how many teams each policy needs, on real calls (no broker)"
    )
    p.add_argument("file", type=Path, help="the CAD calls-for-service export (CSV)")
    p.add_argument("--mapping", required=True, help="mapping file or shipped mapping name")
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="POLICY",
        help="policy file or shipped name; repeat to compare (default: the mapping's demo)",
    )
    p.add_argument(
        "--target",
        type=share,
        default=0.9,
        metavar="SHARE",
        help="share of each pilot's team calls the teams must reach, above 0 and at most 1",
    )
    p.add_argument(
        "--teams-max",
        type=_team_count,
        default=12,
        metavar="N",
        help="try 1 to N teams on shift (at most 200)",
    )
    p.add_argument(
        "--max-wait-minutes",
        type=non_negative_float,
        default=None,
        metavar="M",
        help="the longest a team call waits for a team, 0 for no waiting (default: each "
        "policy's max_queue_wait_minutes)",
    )
    p.add_argument(
        "--time-on-call-minutes",
        type=positive_float,
        default=None,
        metavar="M",
        help="mean travel plus time on scene (default: 52.6, the department's 7.6 min "
        "travel and an assumed 45 min on scene; with --timings, their mean)",
    )
    p.add_argument(
        "--timings",
        type=Path,
        default=None,
        metavar="FILE",
        help="draw times on call from these dispatch events (JSON lines, as on "
        "dispatch.events; default: lognormal travel and on-scene times)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=CAPACITY_SEED,
        help="seed of the times on call: the same seed and input give the same counts",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="OUT",
        help="write the figures here (default: staffing.json in --out)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("staffing-out"),
        metavar="DIR",
        help="report directory (staffing.html)",
    )
    _add_max_reject_rate(p)
    p.set_defaults(func=_cmd_staffing)

    from heart.cli.deadletter import add_parser as add_deadletter_parser

    add_deadletter_parser(sub)  # heart deadletter summary | show | redrive

    for command in sub._choices_actions:  # a command's own --help starts with its summary
        sub.choices[command.dest].description = command.help
    return parser


def _uses_running_broker(args: argparse.Namespace) -> bool:
    """Whether the command talks to the broker at HEART_KAFKA_BOOTSTRAP from the start.

    ``up`` and ``replay`` start their own embedded broker unless that variable is set;
    ``worker`` checks for itself, after its metrics port (a taken port is named first).
    """
    if args.command in ("up", "replay"):
        return "HEART_KAFKA_BOOTSTRAP" in os.environ
    if args.command == "import":
        return bool(args.to_topic)
    return args.command in ("topics", "simulate", "report")


def _broker_line(args: argparse.Namespace, settings: HeartSettings, exc: BaseException) -> str:
    from heart.cli.broker_reach import reason_of, unavailable_message

    if args.command not in ("up", "replay"):
        return unavailable_message(settings.kafka_bootstrap, reason_of(exc))
    if "HEART_KAFKA_BOOTSTRAP" in os.environ:
        return unavailable_message(
            settings.kafka_bootstrap, reason_of(exc), starts_own=args.command
        )
    # Its own embedded broker went away: there is nothing to start or point at.
    return (
        f"the embedded Kafka broker this command started stopped answering "
        f"({reason_of(exc)}); run it again"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status = _main(argv)
        # Inside the try: a reader that left (`| head`) is often noticed only here.
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's documented way: what is still buffered goes nowhere, quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT
    return status


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        # up and replay start their own broker unless told otherwise; broker is one.
        settings = HeartSettings.from_env(
            find_running_up=args.command not in ("up", "replay", "broker")
        )
    except SettingsError as exc:
        print(f"heart: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        if _uses_running_broker(args):
            from heart.cli.broker_reach import check_broker

            check_broker(settings)
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # the CLI's last line of defence: one clear line, no traceback
        from aiokafka.errors import KafkaError

        from heart.cli.broker_reach import BROKER_UNAVAILABLE_EXIT, is_broker_unavailable
        from heart.streams.embedded.broker import BrokerError

        if is_broker_unavailable(exc):
            print(f"heart {args.command}: {_broker_line(args, settings, exc)}", file=sys.stderr)
            return BROKER_UNAVAILABLE_EXIT
        if isinstance(exc, KafkaError):  # the broker answered with a refusal: name it
            print(
                f"heart {args.command}: the Kafka broker at {settings.kafka_bootstrap} "
                f"refused: {exc}",
                file=sys.stderr,
            )
            return 1
        if isinstance(exc, BrokerError | OSError | ValueError):
            print(f"heart {args.command}: {exc}", file=sys.stderr)
            return 1
        raise
