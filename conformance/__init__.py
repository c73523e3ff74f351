"""The D4C conformance suite: `pytest conformance/` against any implementation (docs/scenarios.md).

Collection (scenario files -> items) is `loader` + `plugin`; execution (items -> outcomes) is
`runner` with `kernel` (containers), `events` (assertions) and `sinks` (where events arrive);
reporting (outcomes -> matrix) is `report`. Implementations are reached through `targets` and
`adapters/` — `adapters/reference.py` is the only module here that imports `reference_agent`.
The names below are the surface other tools may use; `plugin` is loaded by conftest.py.
"""

from conformance.events import compare, explain, wait_for
from conformance.lint import lint
from conformance.loader import Problem, ScenarioError, all_tags, discover, load
from conformance.model import Scenario
from conformance.report import write as write_report
from conformance.runner import Failure, Skip, run_engine, run_kernel
from conformance.sinks import BulkServer, NdjsonFiles
from conformance.targets import make_target

__all__ = [
    "BulkServer",
    "Failure",
    "NdjsonFiles",
    "Problem",
    "Scenario",
    "ScenarioError",
    "Skip",
    "all_tags",
    "compare",
    "discover",
    "explain",
    "lint",
    "load",
    "make_target",
    "run_engine",
    "run_kernel",
    "wait_for",
    "write_report",
]
