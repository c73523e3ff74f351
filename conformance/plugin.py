"""The pytest plugin: options, collection (scenario files -> items), and the hand-off to the
runner (items -> outcomes) and the report (outcomes -> matrix).

`conformance.entry` registers `ConformancePlugin` (through conformance/conftest.py in a source
checkout, through the `pytest11` entry point where the suite is installed alone); scenarios are collected under conformance/test_scenarios.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from conformance import catalog, loader, report, runner
from conformance.adapters.command import AdapterError
from conformance.model import ENGINE, KERNEL, Scenario
from conformance.targets import TARGETS, Target, make_target

PACKAGE_DIR = Path(__file__).resolve().parent
SUITE_MODULE = PACKAGE_DIR / "test_scenarios.py"
KERNEL_GROUP = "d4c-kernel"
PROPERTY = "d4c_scenario"  # user_properties key; travels with reports to the xdist controller

try:  # allure labels are markers allure-pytest reads; harmless without allure
    import allure_pytest  # noqa: F401

    HAVE_ALLURE = True
except ImportError:  # pragma: no cover
    HAVE_ALLURE = False


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("d4c-conformance", "D4C conformance suite")
    group.addoption("--target", choices=TARGETS, default="reference",
                    help="implementation to test: reference (this project's agent), command (--adapter FILE), "
                         "engine (engine tier via `--engine-command policy evaluate`). Default: reference")
    group.addoption("--adapter", metavar="FILE", help="YAML adapter file describing an implementation (--target command)")
    group.addoption("--engine-command", default="d4c", metavar="CMD",
                    help="command speaking the `d4c policy evaluate` contract (--target engine). Default: d4c")
    group.addoption("--scenarios", action="append", metavar="PATH",
                    help="scenario file or directory added to the library (repeatable)")
    group.addoption("--library", metavar="DIR|none",
                    help="the scenario library: `none` runs only --scenarios. Default: the library shipped "
                         "with the suite (a source checkout: its scenarios/)")
    group.addoption("--conformance-report", metavar="DIR",
                    help="write the conformance matrix (Markdown + HTML + JSON results) into DIR")
    group.addoption("--event-timeout", type=float, default=10.0, metavar="SECONDS",
                    help="kernel tier: how long to wait for expected events. Default: 10")
    group.addoption("--event-settle", type=float, default=1.0, metavar="SECONDS",
                    help="kernel tier: how long to watch for extra events once expectations hold. Default: 1")
    group.addoption("--keep-workdirs", action="store_true", help="kernel tier: keep agent work directories")
    group.addoption("--agent-dir", metavar="DIR", type=Path,
                    help="kernel tier, adapters with load_policy: run the agent in DIR and leave it running "
                         "(enforcing a policy that matches nothing) for the next run to reuse")


def shipped_library() -> Path | None:
    """The scenario library: package data of the installed suite (`conformance/library/`), or
    the scenarios/ next to the package in a source checkout."""
    for candidate in (PACKAGE_DIR / "library", PACKAGE_DIR.parent / "scenarios"):
        if candidate.is_dir():
            return candidate
    return None


def scenario_paths(library: str | None, extra: list[str]) -> list[Path]:
    """The library (unless `--library none`) followed by every --scenarios path; raises
    pytest.UsageError naming the option for a path that does not exist."""
    paths: list[Path] = []
    if library is None:
        shipped = shipped_library()
        if shipped is None and not extra:
            raise pytest.UsageError("no scenario library shipped with this suite: give --library DIR or --scenarios PATH")
        paths += [shipped] if shipped is not None else []
    elif library != "none":
        paths.append(Path(library).resolve())
        if not paths[-1].is_dir():
            raise pytest.UsageError(f"--library {library}: no such directory")
    for given in extra:
        path = Path(given).resolve()
        if not path.exists():
            raise pytest.UsageError(f"--scenarios {path}: no such file or directory")
        paths.append(path)
    if not paths:
        raise pytest.UsageError("--library none without --scenarios: no scenarios to run")
    return paths


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, tier: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.tier = tier
        self.tags = loader.all_tags(scenario)
        self.add_marker(tier)
        for tag in self.tags:
            self.add_marker(tag)
        if HAVE_ALLURE:
            for tag in self.tags:
                self.add_marker(pytest.mark.allure_label(catalog.section_of(tag), label_type="feature"))
                if tag.startswith("D"):
                    self.add_marker(pytest.mark.allure_label(tag, label_type="story"))
            self.add_marker(pytest.mark.allure_label(tier, label_type="tag"))
        if tier == KERNEL:
            # One node, one enforcing agent: a policy blocks in every container of the node, so
            # kernel items must not run concurrently. With xdist they all go to one worker
            # (--dist loadgroup, switched on by the plugin); engine items still spread.
            self.add_marker(pytest.mark.xdist_group(name=KERNEL_GROUP))
        self.extra_keyword_matches.update({scenario.id, scenario.path.parent.name})
        self.user_properties.append((PROPERTY, json.dumps(
            {"id": scenario.id, "tier": tier, "spec": list(self.tags), "path": str(scenario.path)})))

    def runtest(self) -> None:
        plugin: ConformancePlugin = self.config.pluginmanager.get_plugin(ConformancePlugin.NAME)
        try:
            if self.tier == ENGINE:
                runner.run_engine(self.scenario, plugin.target)
            else:
                runner.run_kernel(self.scenario, plugin.target, plugin.kernel_session())
        except runner.Skip as skip:
            # Skip reasons are about the target or the host, not the scenario: reported once,
            # grouped ("SKIPPED [46] ...: no BPF-LSM kernel"), not once per scenario.
            pytest.skip(str(skip))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, runner.Failure):
            return f"{self.scenario.id} [{self.tier}] {self.scenario.title}\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.scenario.path, self.scenario.location.line - 1, f"{self.scenario.id} [{self.tier}]"


class InvalidScenarioItem(pytest.Item):
    """A scenario file that does not load fails as a test (not a collection error, which would
    stop every other scenario from running)."""

    def __init__(self, *, problems: list[loader.Problem], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problems = problems
        self.user_properties.append((PROPERTY, json.dumps(
            {"id": self.path.stem, "tier": "invalid", "spec": [], "path": str(self.path)})))

    def runtest(self) -> None:
        raise runner.Failure("\n".join(str(p) for p in self.problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"invalid scenario (run `d4c scenario lint`):\n{excinfo.value}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"invalid scenario {self.path.name}"


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            scenario = loader.load(self.path)
        except loader.ScenarioError as error:
            yield InvalidScenarioItem.from_parent(self, name="invalid", problems=error.problems)
            return
        plugin: ConformancePlugin = self.config.pluginmanager.get_plugin(ConformancePlugin.NAME)
        for tag in loader.all_tags(scenario):
            plugin.register_marker(tag)
        for tier in scenario.tiers:
            yield ScenarioItem.from_parent(self, name=f"{scenario.id}[{tier}]", scenario=scenario, tier=tier)


class ScenarioSuite(pytest.File):
    """conformance/test_scenarios.py: its children are the scenario files."""

    def collect(self) -> Iterator[pytest.Collector]:
        plugin: ConformancePlugin = self.config.pluginmanager.get_plugin(ConformancePlugin.NAME)
        for path in loader.discover(plugin.scenario_paths):
            yield ScenarioFile.from_parent(self, path=path)


class ConformancePlugin:
    NAME = "d4c-conformance"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        opt = config.option
        try:
            self.target: Target = make_target(opt.target, opt.adapter, opt.engine_command)
        except (ValueError, AdapterError) as error:
            raise pytest.UsageError(str(error)) from None
        self.scenario_paths = scenario_paths(opt.library, opt.scenarios or [])
        self.options = runner.Options(opt.event_timeout, opt.event_settle, opt.keep_workdirs,
                                      opt.agent_dir.resolve() if opt.agent_dir else None)
        self._kernel: runner.KernelSession | None = None
        self.outcomes: dict[str, dict[str, Any]] = {}
        for marker, text in ((ENGINE, "engine tier: synthetic operations"), (KERNEL, "kernel tier: real containers"),
                             ("xdist_group", "pytest-xdist: items of one group run on one worker")):
            config.addinivalue_line("markers", f"{marker}: {text}")
        if getattr(opt, "dist", None) == "load":
            # xdist picks its scheduler after configuration; loadgroup = load + xdist_group marks.
            opt.dist = "loadgroup"
        if getattr(config, "workerinput", {}).get("d4c_loadgroup"):
            # Workers re-parse the command line (dist "load"); grouping needs their node ids to
            # carry the group suffix, which xdist adds when this flag is set.
            opt.loadgroup = True
        for clause in catalog.CLAUSES:
            self.register_marker(clause.id)

    def register_marker(self, tag: str) -> None:
        clause = catalog.BY_ID.get(tag)
        self.config.addinivalue_line("markers", f"{tag}: scenarios pinning {clause.title if clause else tag}")

    def kernel_session(self) -> runner.KernelSession:
        if self._kernel is None:
            self._kernel = runner.KernelSession(self.options)
        return self._kernel

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:  # xdist controller, per worker
        node.workerinput["d4c_loadgroup"] = self.config.option.dist == "loadgroup"

    # --- collection ---------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        if module_path.resolve() == SUITE_MODULE.resolve():
            return ScenarioSuite.from_parent(parent, path=module_path)
        return None

    # --- reporting ----------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if PROPERTY not in props:
            return
        meta = json.loads(props[PROPERTY])
        key = f"{meta['id']}[{meta['tier']}]"
        if report.when == "call" or report.outcome != "passed":
            outcome = report.outcome
            if report.when != "call" and report.outcome == "failed":
                outcome = "failed"  # an error in setup/teardown is a failure of the scenario
            previous = self.outcomes.get(key, {}).get("outcome")
            if previous != "failed":
                detail = str(report.longrepr)[:2000] if report.outcome == "failed" else (
                    report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else "")
                self.outcomes[key] = {**meta, "outcome": outcome, "detail": detail}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._kernel is not None:
            self._kernel.close()
        directory = self.config.option.conformance_report
        if directory and not hasattr(self.config, "workerinput"):  # the xdist controller writes it
            written = report.write(Path(directory), self.target_label(), list(self.outcomes.values()),
                                   self.scenario_paths)
            self.written = written

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        restarts = self._kernel.restarts if self._kernel is not None else []
        if restarts:  # in this process (without xdist, or on a worker's own output)
            terminalreporter.write_line(f"kernel tier: the agent was restarted for {len(restarts)} scenario(s), "
                                        "its policy could not be loaded into the running one:")
            for line in restarts:
                terminalreporter.write_line(f"  {line}")
        written = getattr(self, "written", None)
        if written:
            terminalreporter.write_line(f"conformance report: {', '.join(str(p) for p in written)}")

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return [f"conformance target: {self.target.describe()}"]

    def target_label(self) -> str:
        opt = self.config.option
        if opt.target == "command":
            return f"command:{self.target.agent_adapter().name if hasattr(self.target, 'spec') else '?'}"
        if opt.target == "engine":
            return f"engine:{opt.engine_command}"
        return opt.target
