"""The ``driftwatch`` command (CONTRACT section 2)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError

from driftwatch.config import Settings, get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from driftwatch import db
    from driftwatch.alerting.rules import RulesInvalid
    from driftwatch.alerting.service import RulesSource
    from driftwatch.app import create_app
    from driftwatch.runtime import Workers

    settings = get_settings()
    try:
        ruleset = RulesSource(settings.rules_dir).check()
    except RulesInvalid as error:
        print(f"driftwatch serve: the rules in {settings.rules_dir} have problems; "
              f"fix them (driftwatch rules check) and start again:\n{error}",
              file=sys.stderr)  # fmt: skip
        return 1
    if settings.slack_token is None and any(c.type == "slack" for c in ruleset.channels.values()):
        logging.getLogger("driftwatch").warning(
            "rules use Slack channels but DRIFTWATCH_SLACK_TOKEN is not set: Slack "
            "deliveries will wait and retry until it is"
        )
    db.upgrade(settings.database_url)
    for problem in _segment_problems(ruleset):  # models change at run time: a warning here
        logging.getLogger("driftwatch").warning("%s; it is not evaluated on that model", problem)
    workers = Workers.of_serve(
        no_scheduler=args.no_scheduler,
        no_monitoring=args.no_monitoring,
        no_dispatcher=args.no_dispatcher,
        no_retention=args.no_retention,
    )
    uvicorn.run(
        create_app(settings, workers=workers), host=args.host, port=args.port,
        log_level=args.log_level, timeout_graceful_shutdown=10,
        log_config=None,  # our handlers: JSON off a terminal
    )  # fmt: skip
    return 0


def _demo(args: argparse.Namespace) -> int:
    from driftwatch import demo

    return demo.run(port=args.port, duration=args.duration)


class _Parser(argparse.ArgumentParser):
    """Arguments it cannot read: one line saying which and why, and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _moment(text: str) -> datetime:
    """An ISO 8601 time; UTC when it gives no zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time: give one such as 2026-11-20T10:00:00Z "
            "(without a zone, UTC)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give a number from 1 to 65535")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give a number of seconds above 0, such as 120"
        )
    return seconds


def _run(args: argparse.Namespace) -> int:
    """Compute a window of a model now (default: the last closed window) and print it."""

    from driftwatch import db
    from driftwatch.alerting.rules import RulesInvalid
    from driftwatch.alerting.service import AlertingContext, RulesSource
    from driftwatch.core.time import iso
    from driftwatch.errors import DriftwatchError
    from driftwatch.monitoring import service
    from driftwatch.registry import service as registry

    settings = get_settings()
    try:
        rules = RulesSource(settings.rules_dir).check()
    except RulesInvalid as error:
        print(f"driftwatch run: the rules in {settings.rules_dir} have problems:\n{error}",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.start and args.end and args.end <= args.start:
        print(f"driftwatch run: --end {iso(args.end)} must be after --start {iso(args.start)}",
              file=sys.stderr)  # fmt: skip
        return 2
    db.upgrade(settings.database_url)
    try:
        with db.session_scope(db.get_engine(settings.database_url)) as session:
            model = registry.get_by_name(session, name=args.model)
            start, end = _window(args.start, args.end, timedelta(seconds=model.window_seconds))
            context = AlertingContext(rules, settings.public_url)
            run = service.run_now(session, model=model, start=start, end=end, alerting=context,
                                  retention=settings.retention_policy(),
                                  exact_max_rows=settings.exact_max_rows,
                                  label_horizon=settings.label_horizon)  # fmt: skip
            baseline = service.active_baseline(session, model=model)
            out = service.to_out(run, model=model, baseline=baseline)
    except DriftwatchError as error:
        print(f"driftwatch run: {error.message}", file=sys.stderr)
        return 1
    print(out.model_dump_json(indent=2))
    return 0


def _window(start: datetime | None, end: datetime | None, length: timedelta
            ) -> tuple[datetime, datetime]:  # fmt: skip
    """The window ``driftwatch run`` computes: the one given, the model's window from ``start``
    or up to ``end``, or else the last closed one."""
    from driftwatch.core.time import utcnow, window_start

    if start is not None:
        return start, end or start + length
    end = end or window_start(utcnow(), length)
    return end - length, end


def _baselines_create(args: argparse.Namespace) -> int:
    """Prepare a baseline from a CSV or Parquet file, showing progress on a large one, and say
    which columns it used and which it ignored."""
    from pathlib import Path

    import pandas as pd

    from driftwatch import db
    from driftwatch.errors import DriftwatchError
    from driftwatch.monitoring import files, service
    from driftwatch.registry import service as registry

    settings = get_settings()
    db.upgrade(settings.database_url)
    path = Path(args.file)
    if not path.is_file():
        print(f"driftwatch baselines create: no file {path}", file=sys.stderr)
        return 1
    try:
        if path.suffix.lower() == ".parquet":
            with path.open("rb") as handle:
                table = files.read_table(handle, path.name)
        else:
            parts = []
            for part, share in files.read_in_chunks(path):
                parts.append(part)
                print(f"\rreading {path.name}: {share:6.1%}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            table = files.Table(pd.concat(parts, ignore_index=True), "CSV", files.csv_line)
        print(f"preparing {len(table.frame):,} rows", file=sys.stderr)
        with db.session_scope(db.get_engine(settings.database_url)) as session:
            model = registry.get_by_name(session, name=args.model, for_update=True)
            baseline = service.baseline_from_table(session, model=model, name=args.name,
                                                   table=table)  # fmt: skip
            print(f"baseline {baseline.id} {baseline.name!r}: {baseline.rows:,} rows, active")
            _print_columns(baseline.columns or {}, baseline.warnings or [])
    except DriftwatchError as error:
        print(f"driftwatch baselines create: {error.message}", file=sys.stderr)
        return 1
    return 0


def _print_columns(columns: dict[str, Any], warnings: list[str]) -> None:
    """The columns a baseline used and ignored, as its API answer has them."""
    for role in ("features", "prediction", "label", "ignored"):
        value = columns.get(role)
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"  {role}: {shown or '(none)'}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _db_upgrade(_args: argparse.Namespace) -> int:
    from driftwatch import db

    db.upgrade(get_settings().database_url)
    print("database is at the latest revision")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from driftwatch import db
    from driftwatch.auth import service as keys

    settings = get_settings()
    db.upgrade(settings.database_url)
    with db.session_scope(db.get_engine(settings.database_url)) as session:
        _key, plain = keys.create(session, name=args.name, scope=args.scope)
    print(plain)
    print(f"created {args.scope} key {args.name!r}; it is shown only this once", file=sys.stderr)
    return 0


def _keys_list(_args: argparse.Namespace) -> int:
    from driftwatch import db
    from driftwatch.auth import service as keys

    settings = get_settings()
    db.upgrade(settings.database_url)
    with db.session_scope(db.get_engine(settings.database_url)) as session:
        for key in keys.list_keys(session):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            print(f"{key.id:>5}  {key.prefix:<12} {key.scope:<7} {state:<24} {key.name}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    """Revoke keys by id or by name; every process stops accepting them within
    DRIFTWATCH_KEY_CACHE_SECONDS, and their dashboard sessions end."""
    from driftwatch import db
    from driftwatch.auth import service as keys

    settings = get_settings()
    db.upgrade(settings.database_url)
    with db.session_scope(db.get_engine(settings.database_url)) as session:
        revoked = keys.revoke(session, key=args.key)
    if not revoked:
        print(f"driftwatch keys revoke: no active key with id or name {args.key!r}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"revoked {revoked} key{'s' if revoked > 1 else ''}", file=sys.stderr)
    return 0


def _retention_run(args: argparse.Namespace) -> int:
    from driftwatch import db
    from driftwatch.core.retention import describe
    from driftwatch.core.time import iso, utcnow
    from driftwatch.retention import service

    settings = get_settings()
    if args.dry_run:  # changes nothing, migrations included
        behind = db.revision_behind(settings.database_url)
        if behind is not None:
            print(f"driftwatch retention run --dry-run: {behind}; `driftwatch db upgrade` "
                  "brings it up to date (a dry run changes nothing)", file=sys.stderr)  # fmt: skip
            return 1
    else:
        db.upgrade(settings.database_url)
    policy = settings.retention_policy()
    if policy.age is None:
        print("retention: DRIFTWATCH_RETENTION is off: raw data is kept forever")
    engine = db.get_engine(settings.database_url)
    report = service.apply(engine, policy, now=utcnow(), dry_run=args.dry_run)
    if report.skipped:
        print("retention: another process is applying the policy now; nothing done")
        return 0
    if report.created_partitions:
        print(f"made ahead: {len(report.created_partitions)} partitions")
    if report.cutoff is None or policy.age is None:
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"retention {describe(policy.age)}: raw data before {iso(report.cutoff)}")
    for name in report.dropped_partitions:
        print(f"  partition {name}: {'would drop' if args.dry_run else 'dropped'}")
    if not any(report.rows.values()) and not report.dropped_partitions:
        print("  nothing to remove")
        return 0
    for table, count in sorted(report.rows.items()):
        print(f"  {table}: {verb} {count:,} rows")
    return 0


def _rules_check(args: argparse.Namespace) -> int:
    """Validate rule files: every problem with its file and line; exit 1 if there is any."""
    from pathlib import Path

    from driftwatch.alerting import rules
    from driftwatch.text import plural

    location = args.path or get_settings().rules_dir
    if args.path is None and not Path(location).exists():
        # as serve reads it: the configured folder not made yet means no rules
        print(f"{location}: no such folder, so no rules: serve runs without alerts "
              "(put rule files there, as rules/examples/ shows)")  # fmt: skip
        return 0
    try:
        ruleset = rules.load(location)
    except rules.RulesInvalid as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{plural(len(error.problems), 'problem')} in {location}", file=sys.stderr)
        return 1
    if args.against_database:
        problems = _segment_problems(ruleset)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"{plural(len(problems), 'problem')} against the models of the database",
                  file=sys.stderr)  # fmt: skip
            return 1
    counted = f"{plural(len(ruleset.rules), 'rule')}, {plural(len(ruleset.channels), 'channel')}"
    print(f"{location}: {counted}, all valid")
    return 0


def _segment_problems(ruleset: Any) -> list[Any]:
    """Rules naming a segment feature a model they apply to does not have (CONTRACT section
    10), against the models of the configured database."""
    from driftwatch import db
    from driftwatch.alerting import rules
    from driftwatch.registry import repository

    settings = get_settings()
    with db.session_scope(db.get_engine(settings.database_url)) as session:
        models = {m.name: list(m.segments or []) for m in repository.list_all(session)}
    return rules.segment_problems(ruleset, models)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="driftwatch", description="Model drift monitoring.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate the database, then serve API and dashboard")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="serve only: no scheduled monitoring and no alert deliveries in this process",
    )
    serve.add_argument(
        "--no-monitoring",
        action="store_true",
        help="no scheduled monitoring in this process (alert deliveries still go)",
    )
    serve.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="no alert deliveries from this process (scheduled monitoring still runs)",
    )
    serve.add_argument(
        "--no-retention",
        action="store_true",
        help="no retention passes from this process (DRIFTWATCH_RETENTION)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(handler=_serve)

    demo = commands.add_parser(
        "demo", help="the one-command tour: a real model, drifting traffic, alerts, webhooks"
    )
    demo.add_argument("--port", type=_port, default=8000)
    demo.add_argument("--duration", type=_seconds, default=None,
                      help="seconds to run (default: until Ctrl-C)")  # fmt: skip
    demo.set_defaults(handler=_demo)

    database = commands.add_parser("db", help="database maintenance")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = database_commands.add_parser("upgrade", help="migrate the database to head")
    upgrade.set_defaults(handler=_db_upgrade)

    run = commands.add_parser("run", help="compute a window of a model now and print it")
    run.add_argument("model")
    run.add_argument(
        "--start",
        type=_moment,
        help="ISO 8601 time (UTC without a zone); "
        "default: the start of the last closed window, or a window before --end",
    )
    run.add_argument(
        "--end",
        type=_moment,
        help="ISO 8601 time (UTC without a zone); default: "
        "the end of the last closed window, or a window after --start",
    )
    run.set_defaults(handler=_run)

    baselines = commands.add_parser("baselines", help="reference data")
    baselines_commands = baselines.add_subparsers(
        dest="baselines_command", required=True, metavar="ACTION"
    )
    create_baseline = baselines_commands.add_parser(
        "create", help="prepare a baseline from a CSV or Parquet file and make it active"
    )
    create_baseline.add_argument("model")
    create_baseline.add_argument("--name", required=True)
    create_baseline.add_argument("--file", required=True, help="CSV with a header, or .parquet")
    create_baseline.set_defaults(handler=_baselines_create)

    retention = commands.add_parser("retention", help="remove raw data past DRIFTWATCH_RETENTION")
    retention_commands = retention.add_subparsers(
        dest="retention_command", required=True, metavar="ACTION"
    )
    retention_run = retention_commands.add_parser(
        "run", help="apply the retention policy now (serve does it every hour) and say what went"
    )
    retention_run.add_argument("--dry-run", action="store_true",
                               help="count what would be removed; remove nothing")  # fmt: skip
    retention_run.set_defaults(handler=_retention_run)

    rules_parser = commands.add_parser("rules", help="alert rules")
    rules_commands = rules_parser.add_subparsers(
        dest="rules_command", required=True, metavar="ACTION"
    )
    check = rules_commands.add_parser("check", help="validate rule files (exit 1 on a problem)")
    check.add_argument(
        "path", nargs="?", help="a folder of *.yaml or one file; default: DRIFTWATCH_RULES_DIR"
    )
    check.add_argument(
        "--against-database", action="store_true",
        help="also check the rules against the models of DRIFTWATCH_DATABASE_URL: a rule "
        "naming a segment feature a model it applies to does not have is a problem",
    )  # fmt: skip
    check.set_defaults(handler=_rules_check)

    keys = commands.add_parser("keys", help="API keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_commands.add_parser("create", help="create an API key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", required=True, choices=["ingest", "read", "admin"])
    create.set_defaults(handler=_keys_create)
    listing = keys_commands.add_parser("list", help="every key: id, prefix, scope, state, name")
    listing.set_defaults(handler=_keys_list)
    revoke = keys_commands.add_parser("revoke", help="revoke a key by its id or its name")
    revoke.add_argument("key", help="the key's id (see `driftwatch keys list`) or name")
    revoke.set_defaults(handler=_keys_revoke)
    return parser


def _command(args: argparse.Namespace) -> str:
    """The command as typed, such as ``driftwatch keys list``."""
    action = getattr(args, f"{args.command}_command", None)
    return " ".join(["driftwatch", args.command, *([action] if action else [])])


def main(argv: Sequence[str] | None = None) -> int:
    from driftwatch import logs

    logs.configure()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except OperationalError as error:  # the database cannot be reached, or opened
        url = make_url(get_settings().database_url).render_as_string(hide_password=True)
        reason = str(error.orig or error).strip().splitlines()[0]
        print(f"{_command(args)}: cannot use the database {url} (DRIFTWATCH_DATABASE_URL): "
              f"{reason}", file=sys.stderr)  # fmt: skip
        return 1
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        for problem in error.errors():  # one line a setting, named as it is set
            name = f"DRIFTWATCH_{str(problem['loc'][0]).upper()}"
            value = problem.get("input")
            message = problem["msg"].removeprefix("Value error, ")
            print(f"driftwatch: {name}={value!r}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
