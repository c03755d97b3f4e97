"""Alembic's entry: the revisions run on the connection `migrate.upgrade` hands over, in its transaction."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True)
context.run_migrations()
