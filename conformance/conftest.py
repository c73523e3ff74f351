"""Loads the conformance plugin for `pytest conformance/` from a source checkout (and plain
`pytest` at the repo root, whose testpaths include conformance/). `pytest tests/` never imports
it. Where the suite is installed as its own distribution, its `pytest11` entry point
(conformance.entry) has already added the options and registers the same plugin."""

from __future__ import annotations

import pytest

from conformance import entry


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.has_plugin(entry.ENTRY_POINT):
        entry.pytest_addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    entry.pytest_configure(config)
