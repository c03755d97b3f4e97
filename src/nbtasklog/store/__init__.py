"""Persistence: the SQLAlchemy schema, the Store that reads and writes it, and the write buffer."""
