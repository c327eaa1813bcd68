"""Collects the Python blocks of README.md and docs/*.md as tests (see tests/docs.py)."""

from __future__ import annotations

import pytest

from tests.docs import DOCS, docs_models, docs_workdir, mark_needs

__all__ = ["docs_models", "docs_workdir", "pytest_collect_file"]

pytest_collect_file = DOCS.pytest()


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py turns markers into skips
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_needs(items)
