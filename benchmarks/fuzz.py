#!/usr/bin/env python3
"""Bad input on every surface: random and mutated texts against each reader of untrusted input.

    python3 benchmarks/fuzz.py [--inputs N] [--seconds S] [--seed K] [--keep DIR] [SURFACE...]

Surfaces: policy (load_policy_text, and both kernel compilers on what validates: a CompileError
there is a validator that accepts what the kernel cannot enforce), evaluate (operation JSON ->
parse_operations -> evaluate), lint (a scenario file under `d4c scenario lint`'s lint()), config (the agent's parse_config),
kubeconfig (the agent's client_configuration on a kubeconfig file). Each surface runs in its own
forked process (its peak RSS is its own; a 2 GiB address-space limit keeps a bomb from taking the
machine) with a watchdog: an input still running after --limit CPU seconds (SIGPROF), or 10x that in
wall time (SIGALRM), is stopped and counted as a hang. Per surface it prints inputs, tracebacks (any exception the
surface does not document), hangs, unlocated or multi-line errors, the slowest input (CPU
seconds) and peak RSS. With --keep, every failing and the slowest input are written there.
Exit 1 when any surface had a traceback, a hang or an unlocated error.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import re
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Fragments that broke readers before: tags, aliases, nesting, huge numbers, dates, control
# bytes, surrogates, non-string keys, merge keys.
NASTY = [
    "!!int ", "!!float ", "!!bool ", "!!null ", "!!str ", "!!timestamp ", "!!binary ", "!!set ",
    "!!python/object/apply:os.system ", "!!python/name:os.system ", "!local ", "!<tag:x> ",
    "&a ", "*a", "&b [*a, *a, *a, *a]", "<<: *a\n", "? [a]\n: b\n", "1: x\n", "~: x\n", "true: y\n",
    "[" * 300, "{" * 300, "- " * 200, "9" * 5000, "0x" + "f" * 40, "1:2:3:4:5:6", "-1", "1e400",
    ".nan", ".inf", "-.inf", "2001-13-45", "2024-01-01", "2001-12-14t21:59:43.10-05:00", "=",
    "\x00", "\x01", "\x1b", "\ufeff", "\u2028", '"\\ud800"', '"\\x00"', "'", '"', "\t", "\n", ": ", "#",
    "%YAML 1.1\n---\n", "--- ", "...\n", "|\n  x", ">-\n  y",
]
JSON_NASTY = ["1" * 5000, "-" + "9" * 30, "NaN", "Infinity", "-Infinity", "1e999", "[" * 2000, "{" * 2000,
              '"\\ud800"', '"\\u0000"', "null", "true", "{}", "[]", '"x"', "0", "-0.0", "1.5", '{"kind":']


def _mutate(text: str, rng: random.Random, nasty: list[str]) -> str:
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(text))
        if op == 0:
            text = text[:pos] + rng.choice(nasty) + text[pos:]
        elif op == 1 and text:
            end = min(len(text), pos + rng.randint(1, 20))
            text = text[:pos] + text[end:]
        elif op == 2 and text:
            text = text[:pos] + chr(rng.choice([0, 9, 10, 32, 35, 38, 42, 45, 58, 91, 93, 123, 125, rng.randrange(0x110000)])) + text[pos + 1:]
        elif op == 3:
            lines = text.splitlines(keepends=True)
            if lines:
                i = rng.randrange(len(lines))
                lines.insert(i, lines[i] * rng.randint(1, 50))
                text = "".join(lines)
        elif op == 4:
            text = text[:pos] + rng.choice(nasty) * rng.randint(1, 30) + text[pos:]
        else:
            other = rng.randint(0, len(text))
            text = text[:pos] + text[min(pos, other):max(pos, other)] + text[pos:]
    return text


def _random_yaml(rng: random.Random, words: list[str], depth: int = 0) -> str:
    """A random YAML-ish document over the surface's own vocabulary."""
    kind = rng.randrange(4) if depth < 4 else 3
    pad = "  " * depth
    if kind == 0:
        return "".join(f"{pad}{rng.choice(words)}:\n{_random_yaml(rng, words, depth + 1)}" for _ in range(rng.randint(1, 4)))
    if kind == 1:
        return "".join(f"{pad}- {rng.choice(words + NASTY)}\n" for _ in range(rng.randint(1, 4)))
    if kind == 2:
        items = ", ".join(rng.choice(words + NASTY) for _ in range(rng.randint(0, 5)))
        return f"{pad}{rng.choice(words)}: [{items}]\n"
    return f"{pad}{rng.choice(words)}: {rng.choice(words + NASTY)}\n"


MAX_INPUT_BYTES = 64 * 1024
# The file surfaces write each input to a file: in memory where the machine has a tmpfs.
SCRATCH_PARENT = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


class Hang(Exception):
    pass


# --- surfaces: each returns seeds, a vocabulary, and a function that reads one input and
# returns a list of its error lines (raising only on a bug) ---------------------------------

LOCATED = re.compile(r"^[^\n]*:\d+:\d+: [^\n]*$")


def _policy_surface(scratch: Path):
    from reference_agent.policy import load_policy_text
    from reference_agent.policy.cli import print_text_report

    # Every scenario's policy (together they use every condition and operation), and policies
    # with values at and just over the kernel matcher's limits, which mutations move across them.
    seeds = [_scenario_policy(p) for p in sorted((ROOT / "scenarios").rglob("*.yaml"))]
    seeds += _limit_policies()

    compile_all = _kernel_compilers()
    stats = {"compiled": 0}

    def run(text: str) -> list[str]:
        result = load_policy_text(text, "p.yaml")
        if result.policy is not None and compile_all is not None:
            compile_all(result.policy)  # D26: what validates, compiles; a CompileError is a bug
            stats["compiled"] += 1
        out = io.StringIO()
        print_text_report(result, "p.yaml", out)
        out.getvalue().encode("utf-8", "backslashreplace")
        return [line for line in out.getvalue().splitlines() if "warning:" not in line]

    if compile_all is not None:
        run.stats = stats  # reported: how many inputs reached the compilers
    return [s for s in seeds if s], ["file", "process", "selectors", "responses", "name", "operation",
                                      "targetFilePath", "match", "actions", "exclude", "log", "block",
                                      "alert", "version", "processName", "processExecutable", "processUserId",
                                      "sessionLeaderName", "containerImageName", "fork", "exec", "execMemFd",
                                      "createExecutable", "/**/a/**/b/**/c/**/d", "/x/*", "bash"], run


# Values at the kernel matcher's limits (D26, policy/limits.py): three and four `/**/`, the
# token bytes 0x01-0x02 (as YAML escapes), patterns of 255 and 256 bytes, names of 253 and 254.
_LIMIT_PATHS = ["/**/a/**/b/**/c", "/**/a/**/b/**/c/**/d", "/**/**/**/**/x", r"/tmp/\x01", r"/tmp/\x02*",
                "/" + "p" * 254, "/" + "p" * 255, "/" + "p" * 240 + "/**/q"]
_LIMIT_NAMES = ["n" * 253, "n" * 254, r"a\x01", r"\x02"]


def _limit_policies() -> list[str]:
    out = []
    for value in _LIMIT_PATHS:
        out.append(_one_selector("file", "targetFilePath", value, "/ok/**", "[createFile]"))
        for field in ("processExecutable", "sessionLeaderExecutable"):
            out.append(_one_selector("process", field, value, "/ok/**", "[exec]"))
    for value in _LIMIT_NAMES:
        for field in ("processName", "sessionLeaderName"):
            out.append(_one_selector("process", field, value, "ok", "[exec, execMemFd]"))
    return out


def _one_selector(section: str, field: str, value: str, other: str, operations: str) -> str:
    return (f"{section}:\n  selectors:\n    - name: edge\n      operation: {operations}\n"
            f'      {field}: ["{value}", {other}]\n  responses:\n    - match: [edge]\n      actions: [log]\n')


def _kernel_compilers():
    """Both kernel compilers on one policy, or None where the BPF objects (their ABI) are not built."""
    try:
        from reference_agent.kernel.compiler import compile_file_section
        from reference_agent.kernel.process_compiler import compile_process_section
    except ImportError:
        return None

    def compile_all(policy) -> None:
        compile_file_section(policy)
        compile_process_section(policy)

    return compile_all


def _scenario_policy(path: Path) -> str:
    import yaml

    data = yaml.safe_load(path.read_text())
    return yaml.safe_dump(data.get("policy")) if isinstance(data, dict) and data.get("policy") else ""


def _evaluate_surface(scratch: Path):
    from reference_agent.policy import evaluate, load_policy_text
    from reference_agent.policy.cli import parse_operation_text
    import yaml

    policy = load_policy_text((ROOT / "scenarios/responses/responses-seed-example-policy.yaml").read_text()).policy
    if policy is None:  # that file is a scenario: take its embedded policy
        policy = load_policy_text(_scenario_policy(ROOT / "scenarios/responses/responses-seed-example-policy.yaml")).policy
    seeds = []
    for path in sorted((ROOT / "scenarios").rglob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for op in (data.get("operations") or []) if isinstance(data, dict) else []:
            seeds.append(json.dumps(op.get("input"), indent=1))

    def run(text: str) -> list[str]:
        _, ops, problem = parse_operation_text(text, "op.json")  # what `d4c policy evaluate` prints
        if problem is not None or ops is None:
            return [str(problem)]
        for op in ops:
            evaluate(policy, op)
        return []

    return seeds, ["kind", "file", "process", "operation", "path", "mount", "container", "image"], run


def _lint_surface(scratch: Path):
    from conformance.lint import lint

    target = scratch / "s.yaml"
    seeds = [p.read_text() for p in sorted((ROOT / "scenarios").rglob("*.yaml"))[:30]]

    def run(text: str) -> list[str]:
        target.write_bytes(text.encode("utf-8", "surrogatepass"))
        problems, _ = lint([target])
        return [f"s.yaml:{p.line}:{p.column}: {p.message}" for p in problems if p.severity == "error"]

    return seeds, ["id", "title", "spec", "policy", "containers", "steps", "expect", "operations"], run


def _config_surface(scratch: Path):
    from reference_agent.config import ConfigError, parse_config

    seeds = [
        "output_dir: /var/log/d4c\nnamespace: default\nstdout: false\nstate_dir: /var/lib/d4c\n"
        "elasticsearch_url: http://es:9200\npackage_policy_version: 2\ncluster_id: \"12345\"\n"
        "kubernetes:\n  api: in-cluster\n  node_name: node-1\n  cache_ttl: 60\n  request_timeout: 5\n",
        "namespace: prod\nkubernetes:\n  api: /etc/kube/config\n",
    ]

    def run(text: str) -> list[str]:
        try:
            parse_config(text, "a.yaml")
        except ConfigError as exc:
            return [str(exc)]
        return []

    return seeds, ["output_dir", "namespace", "stdout", "kubernetes", "api", "cache_ttl", "request_timeout"], run


def _kubeconfig_surface(scratch: Path):
    from reference_agent.config import ConfigError, KubernetesConfig
    from reference_agent.metadata.kubernetes import client_configuration

    path = scratch / "kubeconfig"
    seeds = ["apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
             "    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
             "users:\n- name: u\n  user: {token: t}\n"]

    def run(text: str) -> list[str]:
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            client_configuration(KubernetesConfig(api=str(path), file="a.yaml", line=2, column=8))
        except ConfigError as exc:
            return [str(exc)]
        return []

    return seeds, ["apiVersion", "clusters", "cluster", "server", "contexts", "users", "user", "token"], run


SURFACES = {"policy": _policy_surface, "evaluate": _evaluate_surface, "lint": _lint_surface,
            "config": _config_surface, "kubeconfig": _kubeconfig_surface}


def _alarm(signum, frame):
    raise Hang()


def fuzz_surface(name: str, inputs: int, seconds: float, seed: int, limit: float, keep: str | None) -> dict:
    """Run in a child process: the figures of one surface."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    with tempfile.TemporaryDirectory(prefix=f"d4c-fuzz-{name}-", dir=SCRATCH_PARENT) as scratch:
        return _fuzz_in(name, Path(scratch), inputs, seconds, seed, limit, keep)


def _fuzz_in(name: str, scratch: Path, inputs: int, seconds: float, seed: int, limit: float, keep: str | None) -> dict:
    try:
        seeds, words, run = SURFACES[name](scratch)
    except ImportError as exc:
        return {"surface": name, "skipped": str(exc)}
    rng = random.Random(f"{seed}:{name}")
    nasty = JSON_NASTY + NASTY[:20] if name == "evaluate" else NASTY
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGPROF, _alarm)
    figures = {"surface": name, "inputs": 0, "tracebacks": 0, "hangs": 0, "unlocated": 0,
               "slowest_s": 0.0, "slowest": "", "examples": []}
    deadline = time.monotonic() + seconds
    while figures["inputs"] < inputs and time.monotonic() < deadline:
        if rng.random() < 0.2 or not seeds:
            text = _random_yaml(rng, words) if name != "evaluate" else json.dumps({w: rng.choice(words) for w in rng.sample(words, 3)})
            text = _mutate(text, rng, nasty) if rng.random() < 0.5 else text
        else:
            text = _mutate(rng.choice(seeds), rng, nasty)
        # Inputs stay at most MAX_INPUT_BYTES: reading time grows with size, and the question here
        # is what a file's content, not its length, can do.
        text = text[:MAX_INPUT_BYTES]
        figures["inputs"] += 1
        started = time.process_time()
        # CPU time is what an input costs (a loaded host stalls wall time); the wall-clock
        # alarm at 10x catches an input that blocks without spending CPU.
        signal.setitimer(signal.ITIMER_PROF, limit)
        signal.setitimer(signal.ITIMER_REAL, 10 * limit)
        problem = None
        try:
            errors = run(text)
        except Hang:
            figures["hangs"] += 1
            problem = f"over {limit} s"
            errors = []
        except BaseException:  # noqa: BLE001 - what we are counting
            figures["tracebacks"] += 1
            problem = traceback.format_exc().strip().splitlines()[-1]
            errors = []
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
        spent = time.process_time() - started
        bad_lines = [e for e in errors if not LOCATED.match(e.replace("\r", " "))]
        if bad_lines and problem is None:
            figures["unlocated"] += 1
            problem = f"unlocated: {bad_lines[0][:200]!r}"
        if spent > figures["slowest_s"]:
            figures["slowest_s"], figures["slowest"] = spent, text
        if problem is not None:
            if len(figures["examples"]) < 5:
                figures["examples"].append(problem[:300])
            if keep:
                Path(keep, f"{name}-{figures['inputs']}.txt").write_text(text, errors="surrogatepass")
    if keep and figures["slowest"]:
        Path(keep, f"{name}-slowest.txt").write_text(figures["slowest"], errors="surrogatepass")
    figures["slowest_bytes"] = len(figures["slowest"].encode("utf-8", "surrogatepass"))
    figures["slowest"] = figures["slowest"][:80]
    figures.update(getattr(run, "stats", {}))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def _child(args: tuple, queue) -> None:
    queue.put(fuzz_surface(*args))


def run_all(surfaces: list[str], inputs: int, seconds: float, seed: int, limit: float, keep: str | None) -> list[dict]:
    context = multiprocessing.get_context("fork")
    results = []
    for name in surfaces:
        queue = context.Queue()
        child = context.Process(target=_child, args=((name, inputs, seconds, seed, limit, keep), queue))
        child.start()
        try:
            results.append(queue.get(timeout=seconds + 120))
        except Exception:  # noqa: BLE001 - the child died (e.g. killed by the kernel)
            results.append({"surface": name, "tracebacks": 1, "examples": [f"child exited {child.exitcode}"],
                            "inputs": 0, "hangs": 0, "unlocated": 0, "slowest_s": 0, "peak_rss_mb": 0})
        child.join()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("surfaces", nargs="*", choices=[[], *SURFACES], default=[])
    parser.add_argument("--inputs", type=int, default=100_000, help="per surface (default 100000)")
    parser.add_argument("--seconds", type=float, default=3600, help="at most this long per surface")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=1.0, help="an input running longer is a hang")
    parser.add_argument("--keep", metavar="DIR", help="write failing and slowest inputs here")
    args = parser.parse_args(argv)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    results = run_all(args.surfaces or list(SURFACES), args.inputs, args.seconds, args.seed, args.limit, args.keep)
    failed = False
    print(f"{'surface':<11} {'inputs':>8} {'tracebacks':>10} {'hangs':>6} {'unlocated':>9} {'slowest s':>9} {'peak RSS MB':>11}")
    for r in results:
        if "skipped" in r:
            print(f"{r['surface']:<11} skipped: {r['skipped']}")
            continue
        print(f"{r['surface']:<11} {r['inputs']:>8} {r['tracebacks']:>10} {r['hangs']:>6} {r['unlocated']:>9} "
              f"{r['slowest_s']:>9.3f} {r['peak_rss_mb']:>11.0f}   slowest input: {r.get('slowest_bytes', 0)} bytes {r.get('slowest', '')!r}")
        if "compiled" in r:
            print(f"    validated, and compiled by both kernel compilers: {r['compiled']}")
        for example in r.get("examples", []):
            print(f"    {example}")
        failed |= bool(r["tracebacks"] or r["hangs"] or r["unlocated"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
