"""The ``driftwatch`` command (CONTRACT section 2)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from driftwatch.config import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from driftwatch import db
    from driftwatch.app import create_app

    settings = get_settings()
    db.upgrade(settings.database_url)
    app = create_app(settings)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=10
    )
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftwatch", description="Model drift monitoring.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate the database, then serve API and dashboard")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="serve only; do not run scheduled monitors or deliver alerts",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(handler=_serve)

    database = commands.add_parser("db", help="database maintenance")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = database_commands.add_parser("upgrade", help="migrate the database to head")
    upgrade.set_defaults(handler=_db_upgrade)

    keys = commands.add_parser("keys", help="API keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_commands.add_parser("create", help="create an API key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", required=True, choices=["ingest", "read", "admin"])
    create.set_defaults(handler=_keys_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
