"""A bounded sample of benchmarks/fuzz.py: a few seconds of random and mutated input per
surface (policy, evaluate's operation JSON, scenario lint, agent config, kubeconfig). Any
traceback, hang or error line without FILE:LINE:COLUMN fails the test and names the input kind;
so does a policy that validates but that a kernel compiler refuses (D26).
The full run (100,000 inputs per surface, figures) is `python3 benchmarks/fuzz.py`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("d4c_fuzz", ROOT / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_surface_survives_a_fuzz_sample(tmp_path):
    fuzz = _fuzz_module()
    # The watchdog here is a hang detector (5 s on a shared 2-core host), not a speed check:
    # the benchmark's own run uses 1 s and prints the slowest input.
    results = fuzz.run_all(list(fuzz.SURFACES), inputs=100_000, seconds=2, seed=7, limit=5.0, keep=str(tmp_path))
    ran = [r for r in results if "skipped" not in r]
    assert {r["surface"] for r in ran} >= {"policy", "evaluate", "lint", "config"}
    for r in ran:
        assert r["inputs"] > 0, r
        assert (r["tracebacks"], r["hangs"], r["unlocated"]) == (0, 0, 0), (r["surface"], r["examples"])
    if fuzz._kernel_compilers() is not None:
        # what validated was compiled too (a CompileError would be a traceback above)
        [policy] = [r for r in ran if r["surface"] == "policy"]
        assert policy["compiled"] > 0, policy
