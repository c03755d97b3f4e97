"""The store's schema history as Alembic revisions (versions/); `migrate.upgrade` runs them."""
