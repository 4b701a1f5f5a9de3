"""The ``driftwatch`` command (CONTRACT section 2)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from driftwatch.config import Settings, get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from driftwatch import db
    from driftwatch.alerting.rules import RulesInvalid
    from driftwatch.alerting.service import RulesSource
    from driftwatch.app import create_app

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
    app = create_app(settings)
    engine = db.get_engine(settings.database_url)
    background: list[Any] = []
    if not (args.no_scheduler or args.no_monitoring):
        from driftwatch.monitoring.scheduler import Scheduler

        background.append(Scheduler(engine, settings))
    if not (args.no_scheduler or args.no_dispatcher):
        from driftwatch.alerting.dispatcher import Dispatcher

        background.append(Dispatcher(engine, settings))
    if not (args.no_scheduler or args.no_retention):
        from driftwatch.retention.scheduled import RetentionWorker

        background.append(RetentionWorker(engine, settings))
    for worker in background:
        worker.start()
    try:
        uvicorn.run(
            app, host=args.host, port=args.port, log_level=args.log_level,
            timeout_graceful_shutdown=10, log_config=None,  # our handlers: JSON off a terminal
        )  # fmt: skip
    finally:
        for worker in background:
            worker.shutdown()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from driftwatch import demo

    return demo.run(port=args.port, duration=args.duration)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(args: argparse.Namespace) -> int:
    """Compute a window of a model now (default: the last closed window) and print it."""
    import json

    from driftwatch import db
    from driftwatch.alerting.rules import RulesInvalid
    from driftwatch.alerting.service import AlertingContext, RulesSource
    from driftwatch.errors import DriftwatchError
    from driftwatch.models.base import utcnow
    from driftwatch.monitoring import service
    from driftwatch.monitoring.windows import window_start
    from driftwatch.registry import service as registry

    settings = get_settings()
    try:
        rules = RulesSource(settings.rules_dir).check()
    except RulesInvalid as error:
        print(f"driftwatch run: the rules in {settings.rules_dir} have problems:\n{error}",
              file=sys.stderr)  # fmt: skip
        return 1
    db.upgrade(settings.database_url)
    try:
        with db.session_scope(db.get_engine(settings.database_url)) as session:
            model = registry.get_by_name(session, name=args.model)
            length = timedelta(seconds=model.window_seconds)
            end = _parse_time(args.end) if args.end else window_start(utcnow(), length)
            start = _parse_time(args.start) if args.start else end - length
            context = AlertingContext(rules, settings.public_url)
            run = service.run_now(session, model=model, start=start, end=end, alerting=context,
                                  retention=settings.retention_policy())  # fmt: skip
            baseline = service.active_baseline(session, model=model)
            out = service.to_out(run, model=model, baseline=baseline)
    except DriftwatchError as error:
        print(f"driftwatch run: {error.message}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0


def _baselines_create(args: argparse.Namespace) -> int:
    """Prepare a baseline from a CSV or Parquet file, showing progress on a large one."""
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
    if path.suffix.lower() == ".parquet":
        frame, where = pd.read_parquet(path), files.parquet_row
    else:
        parts = []
        for part, share in files.read_in_chunks(path):
            parts.append(part)
            print(f"\rreading {path.name}: {share:6.1%}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        frame, where = pd.concat(parts, ignore_index=True), files.csv_line
    print(f"preparing {len(frame):,} rows", file=sys.stderr)
    try:
        with db.session_scope(db.get_engine(settings.database_url)) as session:
            model = registry.get_by_name(session, name=args.model, for_update=True)
            numerical = frozenset(
                f["name"] for f in model.features or [] if f["kind"] == "numerical"
            )
            raw = files.frame_to_raw(
                frame, [f["name"] for f in model.features or []] or None, numerical
            )
            baseline = service.baseline_from_raw(
                session, model=model, name=args.name, raw=raw, source="file", where=where
            )
            print(f"baseline {baseline.id} {baseline.name!r}: {baseline.rows:,} rows, active")
    except DriftwatchError as error:
        print(f"driftwatch baselines create: {error.message}", file=sys.stderr)
        return 1
    return 0


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
    from driftwatch.models.base import iso, utcnow
    from driftwatch.retention import service
    from driftwatch.retention.policy import describe

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
    from driftwatch.alerting import rules
    from driftwatch.text import plural

    location = args.path or get_settings().rules_dir
    try:
        ruleset = rules.load(location)
    except rules.RulesInvalid as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{plural(len(error.problems), 'problem')} in {location}", file=sys.stderr)
        return 1
    counted = f"{plural(len(ruleset.rules), 'rule')}, {plural(len(ruleset.channels), 'channel')}"
    print(f"{location}: {counted}, all valid")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftwatch", description="Model drift monitoring.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate the database, then serve API and dashboard")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
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
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--duration", type=float, default=None,
                      help="seconds to run (default: until Ctrl-C)")  # fmt: skip
    demo.set_defaults(handler=_demo)

    database = commands.add_parser("db", help="database maintenance")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = database_commands.add_parser("upgrade", help="migrate the database to head")
    upgrade.set_defaults(handler=_db_upgrade)

    run = commands.add_parser("run", help="compute a window of a model now and print it")
    run.add_argument("model")
    run.add_argument("--start", help="ISO time; default: the start of the last closed window")
    run.add_argument("--end", help="ISO time; default: the end of the last closed window")
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


def main(argv: Sequence[str] | None = None) -> int:
    from driftwatch import logs

    logs.configure()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
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
