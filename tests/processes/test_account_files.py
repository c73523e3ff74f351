"""A container owns its /etc/passwd and /etc/group, so every reader of them in the agent (the
ECS user.name lookup, the process table, the processUserName compiler) must refuse what a
hostile container can put there: a symlink to a host file, a FIFO that would block a plain
open(), a file too big to parse. Each reader gives no name then, quickly."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from reference_agent.kernel import process_enforcer
from reference_agent.metadata.containers import ContainerInfo
from reference_agent.metadata.users import UserNames
from reference_agent.system import accounts

PASSWD = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"


def _container_root(tmp_path: Path, pid: int) -> Path:
    """A fake /proc/<pid>/root with an etc/ directory."""
    etc = tmp_path / "proc" / str(pid) / "root" / "etc"
    etc.mkdir(parents=True)
    return etc


def _three_readers(tmp_path: Path, pid: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """uid 1000's name as each reader sees it for the container whose init is `pid`."""
    root = str(tmp_path / "proc" / str(pid) / "root")
    container = ContainerInfo(id="c1", name="c", image=None, pod=None, init_pid=pid)
    real_read = accounts.read_id_file
    monkeypatch.setattr(process_enforcer, "read_id_file",
                        lambda path: real_read(path.replace("/proc/", f"{tmp_path}/proc/", 1)))
    return {
        "user.name (ECS)": UserNames(proc_root=tmp_path / "proc").user(container, 1000),
        "process table": accounts.AccountNames().user_name(root, 1000),
        "processUserName compiler": process_enforcer.read_accounts(pid).get(1000),
    }


def _within(seconds: float, fn):
    """Run fn in a thread; fail (instead of hanging the test run) if it blocks."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "an account-file reader blocked (FIFO opened without O_NONBLOCK?)"
    return result[0]


def test_a_regular_passwd_names_the_user_in_every_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (_container_root(tmp_path, 41) / "passwd").write_text(PASSWD)
    assert set(_three_readers(tmp_path, 41, monkeypatch).values()) == {"alice"}


def test_a_symlinked_passwd_is_not_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host_file = tmp_path / "host-passwd"
    host_file.write_text(PASSWD)
    (_container_root(tmp_path, 42) / "passwd").symlink_to(host_file)
    assert _three_readers(tmp_path, 42, monkeypatch) == dict.fromkeys(
        ["user.name (ECS)", "process table", "processUserName compiler"])


def test_a_fifo_passwd_neither_blocks_nor_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(_container_root(tmp_path, 43) / "passwd")
    seen = _within(5, lambda: _three_readers(tmp_path, 43, monkeypatch))
    assert set(seen.values()) == {None}


def test_an_oversized_passwd_is_not_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = _container_root(tmp_path, 44) / "passwd"
    with big.open("w") as f:
        f.write(PASSWD)
        f.truncate(accounts._MAX_FILE_BYTES + 1)
    assert set(_three_readers(tmp_path, 44, monkeypatch).values()) == {None}
