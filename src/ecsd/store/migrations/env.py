"""Alembic environment: runs on the engine handed over by ecsd.store.migrate."""

from alembic import context

from ecsd.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
