"""Engine, sessions and migrations.

Sessions commit at the boundary only: the request dependency or a job's ``session_scope``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import Session

from driftwatch.config import get_settings

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


# What a database that is busy or down raises (SQLite's write lock held past its busy timeout,
# a connection refused, the pool exhausted): the API answers 503, worth sending again.
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, SQLAlchemyTimeoutError)


def unavailable_message(error: Exception) -> str:
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0][:200]
    return f"the database is busy or cannot be reached ({reason}): send again later"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the collector writes; busy_timeout waits for the writer
    # lock instead of failing at once when several threads or processes write.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite starts transactions lazily, which breaks SAVEPOINT and lets a read-then-write
    # transaction be overtaken; take the write lock at BEGIN instead.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    settings = get_settings()
    return create_engine(
        url, pool_size=settings.pool_size, max_overflow=settings.pool_size, pool_pre_ping=True
    )


def worker_engine(engine: Engine, *, pool_size: int, overflow: int) -> Engine:
    """An engine of the background workers' own, on the same database as ``engine`` (whose
    pool serves requests): requests, however many and however slow, cannot take the
    connections the scheduler and the dispatcher need. An in-memory SQLite database is one
    connection's alone, so there the workers share ``engine``."""
    url = engine.url
    if is_sqlite(url.drivername) and url.database in (None, "", ":memory:"):
        return engine
    if is_sqlite(url.drivername):
        return make_engine(url.render_as_string(hide_password=False))
    return create_engine(url, pool_size=pool_size, max_overflow=overflow, pool_pre_ping=True)


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: commits when the block succeeds, rolls back when it raises."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def migrations_dir() -> Path:
    """The Alembic scripts: packaged inside the wheel, or ``migrations/`` of a source checkout."""
    packaged = Path(__file__).parent / "_migrations"
    if (packaged / "env.py").exists():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None) -> None:
    """Migrate the database to head; safe to run from several processes at once on Postgres."""
    from alembic import command

    url = url or get_settings().database_url
    engine = get_engine(url)
    if is_sqlite(url):
        command.upgrade(alembic_config(url), "head")
        return
    # Serialise concurrent ``serve`` start-ups on one Postgres with an advisory lock.
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(727274)"))
        try:
            command.upgrade(alembic_config(url), "head")
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(727274)"))
            conn.commit()


def revision_behind(url: str) -> str | None:
    """Why the database is not at the head revision (None when it is), without changing it."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if is_sqlite(url) and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return f"there is no database at {path}"
    with get_engine(url).connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return None
    return f"the database is at revision {current or 'none (empty)'}, not {head}"


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
