"""The pytest11 entry point of the installed suite (`d4c-conformance-suite`, suite/pyproject.toml):
`pytest --pyargs conformance --target ...` from any directory. Options are added to every pytest
run of that environment; the plugin (collection, report) is registered once per session."""

from __future__ import annotations

import pytest

from conformance import plugin

ENTRY_POINT = "d4c_conformance"  # the entry point's name, as pytest registers it


def pytest_addoption(parser: pytest.Parser) -> None:
    plugin.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    # Registered as a plugin object (not left as hooks of this module) so its hooks also apply to
    # scenario files, which live outside the package's test module.
    if not config.pluginmanager.has_plugin(plugin.ConformancePlugin.NAME):
        config.pluginmanager.register(plugin.ConformancePlugin(config), plugin.ConformancePlugin.NAME)
