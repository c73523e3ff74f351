"""End to end: boots the real BPF-LSM VM under qemu (marker `vm`, part of scripts/test.sh).

The first test builds the image when it is not cached (several minutes); later boots take
~10-20 s under TCG. Commands go through the real `d4c` dispatcher.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
D4C = [sys.executable, "-c", "import sys; from d4c.cli import main; sys.exit(main())"]

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="building the VM image needs root"),
]


def d4c(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*D4C, *args], cwd=CHECKOUT, capture_output=True, check=False, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_lsm_list_contains_bpf():
    # The first VM test builds the image when it is not cached yet (minutes).
    result = d4c("vm", "run", "--", "cat", "/sys/kernel/security/lsm", timeout=1800)
    assert result.returncode == 0, result.stderr
    assert "bpf" in result.stdout.strip().split(","), result.stdout


@pytest.mark.parametrize("release", ["5.10", "7.2"])
def test_kernel_option_boots_that_debian_kernel_with_bpf_active(release):
    # 5.10's default LSM list lacks bpf: it is active only through the lsm= vm/kernels.py adds.
    result = d4c("vm", "run", "--kernel", release, "--no-docker", "--",
                 "sh", "-c", "uname -r; cat /sys/kernel/security/lsm; echo; cat /proc/cmdline", timeout=900)
    assert result.returncode == 0, result.stderr
    version, lsm, cmdline = result.stdout.splitlines()[:3]
    assert version.startswith(release + "."), version
    assert "bpf" in lsm.split(","), lsm
    assert ("lsm=" in cmdline) == (release == "5.10"), cmdline


def test_false_exits_1():
    result = d4c("vm", "run", "--", "false")
    assert result.returncode == 1, result.stderr


@pytest.fixture(scope="module")
def vm_up():
    """A VM of its own (D4C_VM_NAME), so a developer's `d4c vm up` is neither reused nor stopped."""
    env = {"D4C_VM_NAME": f"pytest-{os.getpid()}"}
    up = d4c("vm", "up", env=env)
    assert up.returncode == 0, up.stderr
    yield env
    down = d4c("vm", "down", env=env)
    assert down.returncode == 0, down.stderr


def test_up_status_and_reuse(vm_up):
    status = d4c("vm", "status", env=vm_up)
    assert status.returncode == 0 and "lsm " in status.stdout and "bpf" in status.stdout, status.stdout
    first = d4c("vm", "run", "--", "cat", "/proc/sys/kernel/random/boot_id", env=vm_up)
    second = d4c("vm", "run", "--", "cat", "/proc/sys/kernel/random/boot_id", env=vm_up)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout, "the second run booted another machine instead of reusing it"
    assert "boot:" not in second.stderr


@pytest.mark.parametrize("code", [0, 3, 42, 255])
def test_exit_codes_propagate(vm_up, code):
    assert d4c("vm", "run", "--", "sh", "-c", f"exit {code}", env=vm_up).returncode == code


def test_a_quiet_command_outlives_the_liveness_checks(vm_up):
    """Silence longer than the liveness interval: the host pings the guest and keeps waiting."""
    result = d4c("vm", "run", "--", "sh", "-c", "sleep 4; echo after-silence; exit 6",
                 env={**vm_up, "D4C_VM_SILENCE_CHECK": "1"})
    assert result.returncode == 6, result.stderr
    assert result.stdout == "after-silence\n"


def test_signal_death_is_128_plus_signal(vm_up):
    assert d4c("vm", "run", "--", "sh", "-c", "kill -TERM $$", env=vm_up).returncode == 128 + 15


def test_missing_command_is_127(vm_up):
    result = d4c("vm", "run", "--", "no-such-command-d4c", env=vm_up)
    assert result.returncode == 127 and "no-such-command-d4c" in result.stderr


def test_checkout_visible_at_the_same_path(vm_up):
    result = d4c("vm", "run", "--", "sh", "-c", "pwd && sha256sum pyproject.toml", env=vm_up)
    assert result.returncode == 0, result.stderr
    pwd, digest = result.stdout.splitlines()
    assert pwd == str(CHECKOUT)
    assert digest.split()[0] == hashlib.sha256((CHECKOUT / "pyproject.toml").read_bytes()).hexdigest()


def test_stdout_and_stderr_stay_apart_and_env_is_passed(vm_up):
    result = d4c("vm", "run", "--env", "D4C_PROBE=hello world", "--", "sh", "-c",
                 'echo "out $D4C_PROBE"; echo "err $D4C_IN_VM" >&2', env=vm_up)
    assert result.returncode == 0
    assert result.stdout == "out hello world\n"
    assert result.stderr.endswith("err 1\n")


def test_guest_has_the_bpf_toolchain_and_python_deps(vm_up):
    result = d4c("vm", "run", "--", "sh", "-c",
                 "bpftool version >/dev/null && test -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 && "
                 "test -e /sys/kernel/btf/vmlinux && "
                 "python3 -c 'import yaml, jsonschema, pytest, hypothesis, xdist, allure, docker, kubernetes'",
                 env=vm_up)
    assert result.returncode == 0, result.stdout + result.stderr


def test_container_images_are_in_the_guest_docker(vm_up):
    result = d4c("vm", "run", "--", "sh", "-c",
                 "docker image ls --format '{{.Repository}}:{{.Tag}}' | sort && "
                 "docker run --rm busybox:latest sh -c 'echo busybox-ok' && "
                 "docker run --rm debian:bookworm cat /etc/debian_version && "
                 "docker run --rm nginx:latest nginx -v", env=vm_up)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.split()
    assert {"busybox:latest", "debian:bookworm", "nginx:latest"} <= set(lines)
    assert "busybox-ok" in lines and any(line.startswith("12.") for line in lines)
    assert "nginx version: nginx/" in result.stderr
