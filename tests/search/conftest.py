"""Registers the `integration` marker: tests/search/test_integration.py starts Ray and
subprocesses; they run by default, `-m "not integration"` skips them."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: starts Ray or orca-search subprocesses (slower)")
