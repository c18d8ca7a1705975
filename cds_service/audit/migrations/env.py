"""Alembic environment of the audit tables.

``Store.migrate()`` passes its own connection in ``config.attributes["connection"]`` (already
inside a locked transaction); the ``alembic`` command line may instead give ``sqlalchemy.url``.
"""

from alembic import context
from sqlalchemy import create_engine

from cds_service.audit.models import metadata

config = context.config


def _configure(**kwargs) -> None:
    context.configure(target_metadata=metadata, render_as_batch=True, compare_type=True, **kwargs)


if context.is_offline_mode():
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as own_connection:
            _configure(connection=own_connection)
            with context.begin_transaction():
                context.run_migrations()
        engine.dispose()
