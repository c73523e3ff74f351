"""`d4c vm run` killed (a `timeout`, a CI runner's SIGTERM) still stops its throw-away VM: qemu
runs in a session of its own, so only the command's own cleanup can end it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from vm import cli, machine


def test_sigterm_inside_vm_run_is_an_exit_that_runs_its_cleanup():
    cleaned = []
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as ended:
        with cli._terminated_as_exit():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            finally:
                cleaned.append("machine.stop")
    assert ended.value.code == 128 + signal.SIGTERM and cleaned == ["machine.stop"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_boot_interrupted_while_waiting_for_the_guest_kills_qemu(tmp_path, monkeypatch):
    # A stand-in for qemu: a process in a session of its own that would outlive the command.
    qemu = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    monkeypatch.setattr(machine.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", ""))
    monkeypatch.setattr(machine.subprocess, "Popen", lambda *a, **k: qemu)
    monkeypatch.setattr(machine, "qemu_command", lambda *a, **k: ["qemu"])

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(machine.agent, "ping", interrupted)
    image = type("Image", (), {"rootfs": tmp_path / "rootfs", "key": "k", "kernel_version": "v"})()
    with pytest.raises(KeyboardInterrupt):
        machine._start(image, tmp_path, tmp_path / "state", "tcg", 60, None)
    assert qemu.poll() is not None, "qemu was left running"
