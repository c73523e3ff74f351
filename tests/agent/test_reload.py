"""reload.py: atomic policy swap; invalid or unappliable policies keep the old one enforcing."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from reference_agent.reload import PolicyHolder, PolicyRejected, _signature

GOOD_A = """file:
  selectors:
    - name: binA
      operation: [createFile]
      targetFilePath: [/usr/bin/**]
  responses:
    - match: [binA]
      actions: [log]
"""
GOOD_B = GOOD_A.replace("binA", "binB")
BAD = """file:
  selectors:
    - name: binC
      operation: [createFile, launchRocket]
      targetFilePath: [/usr/bin/**]
  responses:
    - match: [binC, nowhere]
      actions: [log]
"""


def names(loaded):
    return [s.name for s in loaded.policy.file.selectors]


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD_A)
    applied = []
    holder = PolicyHolder(path, applied.append)
    return path, holder, applied


def test_initial_load_applies(setup):
    path, holder, applied = setup
    loaded = holder.load_initial()
    assert names(loaded) == ["binA"] and loaded.generation == 1
    assert applied == [loaded.policy]


def test_invalid_initial_policy_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(BAD)
    applied = []
    with pytest.raises(PolicyRejected) as info:
        PolicyHolder(path, applied.append).load_initial()
    assert applied == []
    assert all(m.startswith(f"{path}:") for m in info.value.messages)
    assert len(info.value.messages) == 2


def test_valid_reload_swaps(setup):
    path, holder, applied = setup
    holder.load_initial()
    path.write_text(GOOD_B)
    outcome = holder.reload()
    assert outcome.accepted and outcome.changed
    assert names(holder.current) == ["binB"] and holder.current.generation == 2
    assert len(applied) == 2


def test_invalid_reload_keeps_the_old_policy_and_logs_located_errors(setup, caplog):
    path, holder, applied = setup
    first = holder.load_initial()
    path.write_text(BAD)
    with caplog.at_level(logging.ERROR, logger="reference_agent.reload"):
        outcome = holder.reload()
    assert not outcome.accepted
    assert holder.current is first and applied == [first.policy]
    lines = [r.getMessage() for r in caplog.records]
    # file:line:col per error: launchRocket is on line 4, nowhere on line 7.
    assert any(line.startswith(f"{path}:4:31: file.selectors[0].operation[1]:") for line in lines), lines
    assert any(line.startswith(f"{path}:7:21: file.responses[0].match[1]:") and "nowhere" in line
               for line in lines), lines
    assert any("keeping the previous policy" in line for line in lines)


def test_apply_failure_keeps_the_old_policy(setup):
    path, holder, applied = setup
    first = holder.load_initial()

    def refuse(policy):
        raise OSError("map update failed")

    holder._apply = refuse
    path.write_text(GOOD_B)
    outcome = holder.reload()
    assert not outcome.accepted and "map update failed" in outcome.messages[0]
    assert holder.current is first


def test_unchanged_content_is_not_reapplied(setup):
    path, holder, applied = setup
    holder.load_initial()
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # touch
    assert holder.changed_on_disk()
    outcome = holder.poll()
    assert outcome.accepted and not outcome.changed and len(applied) == 1
    assert holder.poll() is None  # the new signature was recorded


def test_deleted_file_keeps_the_policy(setup):
    path, holder, applied = setup
    first = holder.load_initial()
    path.unlink()
    outcome = holder.poll()
    assert not outcome.accepted and holder.current is first


def test_watcher_picks_up_an_atomic_rename(setup):
    path, holder, applied = setup
    holder.load_initial()
    holder.start(interval=0.02)
    try:
        tmp = path.with_suffix(".new")
        tmp.write_text(GOOD_B)
        os.replace(tmp, path)  # how editors and kubectl-mounted ConfigMaps update files
        deadline = time.monotonic() + 5
        while names(holder.current) != ["binB"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert names(holder.current) == ["binB"]
    finally:
        holder.stop()


def test_sighup_requests_a_reload(setup):
    path, holder, applied = setup
    holder.load_initial()
    previous = signal.getsignal(signal.SIGHUP)
    holder.install_sighup()
    try:
        # Same size and mtime second would fool a coarse poll: SIGHUP must reload regardless.
        path.write_text(GOOD_B)
        holder._seen_signature = _signature(path)
        assert holder.poll() is None  # the poll alone does not see it
        os.kill(os.getpid(), signal.SIGHUP)
        assert holder._reload_requested.is_set()
        outcome = holder.poll()
        assert outcome.accepted and outcome.changed and names(holder.current) == ["binB"]
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_readers_never_see_a_torn_policy(setup):
    """Reloads race with readers: every read is one whole generation."""
    path, holder, applied = setup
    holder.load_initial()
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            cur = holder.current
            seen.append((cur.generation, names(cur)[0]))

    t = threading.Thread(target=reader)
    t.start()
    for i in range(20):
        path.write_text(GOOD_B if i % 2 == 0 else GOOD_A)
        holder.reload()
    stop.set()
    t.join()
    for generation, name in seen:
        assert name == ("binA" if generation % 2 == 1 else "binB")
