"""Loads the conformance plugin for `pytest conformance/` (and plain `pytest` at the repo root,
whose testpaths include conformance/). `pytest tests/` never imports it."""

from __future__ import annotations

import pytest

from conformance import plugin


def pytest_addoption(parser: pytest.Parser) -> None:
    plugin.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    # Registered as a plugin (not left as conftest hooks) so its hooks also apply to scenario
    # files, which live outside this directory.
    if not config.pluginmanager.has_plugin(plugin.ConformancePlugin.NAME):
        config.pluginmanager.register(plugin.ConformancePlugin(config), plugin.ConformancePlugin.NAME)
