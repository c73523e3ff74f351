"""`d4c agent remove-enforcement` and the pin layout it removes (D33). bpffs itself is only in
the VM (tests/kernel/test_agent_restart.py); here a plain directory laid out the same way
stands in for it: the command unpins links before maps and leaves nothing behind."""

from __future__ import annotations

import io
from pathlib import Path

from d4c.cli import build_parser
from reference_agent import cli
from reference_agent.kernel.pinning import PinnedState, remove_enforcement


def _remove(pin_dir: Path) -> tuple[int, str, str]:
    args = build_parser().parse_args(["agent", "remove-enforcement", "--pin-dir", str(pin_dir)])
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, out=out, err=err), out.getvalue(), err.getvalue()


def _lay_out(root: Path) -> None:
    for name in ("file_hooks", "process_hooks"):
        state = PinnedState(root, name)
        (state.dir / "maps-1").mkdir(parents=True)
        (state.dir / "maps-1" / "active_policy").write_bytes(b"")
        state.links.mkdir()
        (state.links / "d4c_prog-1").write_bytes(b"")


def test_removes_every_pin_and_names_what_was_enforcing(tmp_path):
    root = tmp_path / "d4c"
    _lay_out(root)
    code, out, err = _remove(root)
    assert (code, err) == (0, "")
    assert out == f"d4c agent remove-enforcement: {root}: removed file_hooks, process_hooks\n"
    assert not root.exists()


def test_nothing_there_is_not_an_error(tmp_path):
    code, out, _ = _remove(tmp_path / "absent")
    assert code == 0 and "nothing was enforcing" in out


def test_a_directory_it_cannot_remove_is_one_line_and_exit_1(tmp_path, monkeypatch):
    root = tmp_path / "d4c"
    _lay_out(root)

    def refuse(self: Path) -> None:
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    code, out, err = _remove(root)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "Operation not permitted" in err


def test_the_newest_maps_directory_is_the_one_reused(tmp_path):
    state = PinnedState(tmp_path, "file_hooks")
    for token in ("5", "17"):
        (state.dir / f"maps-{token}").mkdir(parents=True)
        (state.dir / f"maps-{token}" / "stats").write_bytes(b"")
    (state.dir / "maps-99").mkdir()  # empty: a crash before any map was pinned
    assert state.has_maps() and [p.name for p in state._map_dirs()] == ["maps-5", "maps-17"]
    assert remove_enforcement(tmp_path) == []  # no links: nothing was enforcing
