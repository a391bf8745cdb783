"""Alembic revisions of the annotation store, one file each, named NNNN_what.py."""
