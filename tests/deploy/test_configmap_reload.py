"""docs/deploy.md says editing the ConfigMap reloads the policy. Kubelet updates a ConfigMap
volume atomically: the files are symlinks `policy.yaml -> ..data/policy.yaml`, `..data` is a
symlink to a timestamped directory, and an update writes a new directory and renames a new
`..data` link over the old one. This replays that layout and checks the agent's PolicyHolder
(reference_agent/reload.py) notices and applies the new policy, and keeps the old one when the
new one is invalid."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from reference_agent.reload import PolicyHolder

REPO = Path(__file__).resolve().parents[2]


def configmap_policy() -> str:
    docs = yaml.safe_load_all((REPO / "deploy" / "configmap.yaml").read_text())
    return next(d for d in docs if d and d["kind"] == "ConfigMap")["data"]["policy.yaml"]


def kubelet_write(volume: Path, files: dict[str, str], generation: int) -> None:
    """What kubelet's AtomicWriter does for a ConfigMap volume (one update)."""
    stamp = volume / f"..2026_11_30_00_00_0{generation}.{generation:09d}"
    stamp.mkdir()
    for name, text in files.items():
        (stamp / name).write_text(text)
    tmp_link = volume / "..data_tmp"
    tmp_link.symlink_to(stamp.name)
    os.replace(tmp_link, volume / "..data")  # rename(2): the swap is atomic
    for name in files:
        link = volume / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def test_a_configmap_update_reloads_the_policy(tmp_path):
    volume = tmp_path / "etc-d4c"
    volume.mkdir()
    first = configmap_policy()
    kubelet_write(volume, {"policy.yaml": first}, 1)
    applied = []
    holder = PolicyHolder(volume / "policy.yaml", applied.append)
    holder.load_initial()
    assert holder.poll() is None  # nothing changed yet

    second = first.replace("actions: [alert]", "actions: [alert, block]")
    assert second != first
    kubelet_write(volume, {"policy.yaml": second}, 2)
    outcome = holder.poll()
    assert outcome is not None and outcome.accepted and outcome.changed
    assert holder.current.generation == 2
    assert applied[-1].file.responses[0].actions != applied[0].file.responses[0].actions

    kubelet_write(volume, {"policy.yaml": first.replace("actions: [alert]", "actions: [block]")}, 3)  # D8
    outcome = holder.poll()
    assert outcome is not None and not outcome.accepted
    assert holder.current.generation == 2 and len(applied) == 2  # the previous policy keeps enforcing
