"""Postgres helpers beneath SQLAlchemy: the session's psycopg connection, binary streams."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from sqlalchemy.orm import Session


def copy_statement(table: str, columns: Sequence[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


def psycopg_connection(session: Session) -> psycopg.Connection[Any]:
    """The session's psycopg connection, inside the session's transaction.

    psycopg opens a transaction lazily, on the first statement; until then its
    ``transaction()`` would start and commit a transaction of its own instead of a savepoint
    inside the session's, and a batch would no longer be written all or nothing.
    """
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    if driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        driver.execute("SELECT 1")
    return driver


def stream_binary(
    session: Session, sql: str, params: dict[str, Any], *, fields: Sequence[str],
    rows_per_fetch: int,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Rows of a Postgres query one fetch at a time (a server-side cursor), in binary format:
    bytea comes as bytes rather than hex text to decode, and the result is never all in memory
    at once, raw and decoded."""
    driver = psycopg_connection(session)
    with driver.cursor(name=f"stream_{id(sql)}", binary=True) as cursor:
        cursor.itersize = rows_per_fetch
        cursor.execute(sql, params)
        for values in cursor:
            yield dict(zip(fields, values, strict=True))
