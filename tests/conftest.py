"""Shared fixtures: the bundled taxonomy and groupings (loaded once per session)."""

import pytest

from core.taxonomy import load_grouping, load_taxonomy


@pytest.fixture(scope="session")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="session")
def semantic62(taxonomy):
    return load_grouping("semantic62", taxonomy)
