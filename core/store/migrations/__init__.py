"""Alembic migrations of the annotation store (see env.py)."""
