"""Alembic environment: the URL comes from the config (set by driftwatch) or the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from driftwatch.config import get_settings
from driftwatch.models import Base
from driftwatch.storage import partitions

config = context.config
target_metadata = Base.metadata


def _include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Time partitions of predictions and chunks are made at run time, not by migrations."""
    if type_ == "table" and name is not None:
        return partitions.partition_table(name) is None
    return True


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
            include_name=_include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
