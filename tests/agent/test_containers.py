"""metadata/containers.py: cgroup id -> container, D13 image names, pod facts, refresh on events."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reference_agent.metadata.containers import (
    POD_LABEL_PREFIX,
    ContainerCache,
    parse_image_reference,
)
from reference_agent.system.cgroups import cgroup_id_of

from .fakes import FakeDockerClient

CID = "a" * 64
CID2 = "b" * 64


@pytest.fixture
def fs(tmp_path):
    cgroup = tmp_path / "cgroup"
    proc = tmp_path / "proc"
    cgroup.mkdir()
    proc.mkdir()
    return cgroup, proc


def make_cgroup(root: Path, rel: str) -> int:
    path = root / rel
    path.mkdir(parents=True)
    return cgroup_id_of(path)


def write_proc(proc: Path, pid: int, cgroup_path: str) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "cgroup").write_text(f"0::{cgroup_path}\n")


@pytest.mark.parametrize(
    "reference, name, tag, full",
    [
        ("nginx", "nginx", "latest", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "nginx", "1.25", "docker.io/library/nginx:1.25"),
        ("elastic/agent:8.8.0", "agent", "8.8.0", "docker.io/elastic/agent:8.8.0"),
        ("docker.io/library/busybox", "busybox", "latest", "docker.io/library/busybox:latest"),
        ("localhost:5000/team/app:2", "app", "2", "localhost:5000/team/app:2"),
        ("quay.io/org/sub/tool", "tool", "latest", "quay.io/org/sub/tool:latest"),
    ],
)
def test_image_reference_d13(reference, name, tag, full):
    ref = parse_image_reference(reference)
    assert (ref.name, ref.tag, ref.full_name) == (name, tag, full)


def test_systemd_driver_layout_and_sub_cgroups(fs):
    cgroup, proc = fs
    client = FakeDockerClient()
    client.add(CID, "nginx")
    top = make_cgroup(cgroup, f"system.slice/docker-{CID}.scope")
    sub = make_cgroup(cgroup, f"system.slice/docker-{CID}.scope/init.scope")
    host = make_cgroup(cgroup, "system.slice/ssh.service")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    info = cache.lookup(top)
    assert info is not None and info.id == CID
    assert (info.image.name, info.image.tag, info.image.full_name) == ("nginx", "latest", "docker.io/library/nginx:latest")
    assert info.pod is None  # no io.kubernetes.* labels: not Kubernetes-managed (D15)
    assert cache.lookup(sub).id == CID
    assert cache.lookup(host) is None  # D15: not a container = host


def test_cgroupfs_driver_layout(fs):
    cgroup, proc = fs
    client = FakeDockerClient()
    client.add(CID, "busybox:1.36")
    cg = make_cgroup(cgroup, f"docker/{CID}")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    assert cache.lookup(cg).image.tag == "1.36"


def test_proc_cgroup_path_is_authoritative(fs):
    """Kubernetes layouts are found through the init pid's /proc/<pid>/cgroup."""
    cgroup, proc = fs
    rel = f"kubepods.slice/kubepods-besteffort.slice/kubepods-pod1.slice/cri-containerd-{CID}.scope"
    cg = make_cgroup(cgroup, rel)
    write_proc(proc, 4242, "/" + rel)
    client = FakeDockerClient()
    client.add(CID, "nginx", pid=4242)
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    assert cache.lookup(cg).init_pid == 4242


def test_root_cgroup_is_never_a_container(fs):
    cgroup, proc = fs
    write_proc(proc, 77, "/")  # a --cgroupns=host container whose init sits in the root cgroup
    client = FakeDockerClient()
    client.add(CID, "nginx", pid=77)
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    assert cache.lookup(cgroup_id_of(cgroup)) is None
    assert cache.containers() == {}


def test_pod_facts_from_labels(fs):
    cgroup, proc = fs
    labels = {
        "io.kubernetes.pod.name": "nginx-pod-1",
        "io.kubernetes.pod.namespace": "default",
        "io.kubernetes.pod.uid": "uid-1",
        POD_LABEL_PREFIX + "app": "nginx",
        POD_LABEL_PREFIX + "app.kubernetes.io/name": "web",
        POD_LABEL_PREFIX + "empty": "",
        "unrelated": "x",
        "d4c.pod.ip": "10.0.0.7",
    }
    client = FakeDockerClient()
    client.add(CID, "nginx", labels=labels)
    cg = make_cgroup(cgroup, f"docker/{CID}")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    pod = cache.lookup(cg).pod
    assert (pod.name, pod.namespace, pod.uid, pod.ip) == ("nginx-pod-1", "default", "uid-1", "10.0.0.7")
    assert dict(pod.labels) == {"app": "nginx", "app.kubernetes.io/name": "web", "empty": ""}


def test_no_invented_annotation_is_read(fs):
    """Pod labels come from kubelet's conventions or the API, never from a label of this
    project's invention (the suite once used `annotation.d4c.conformance/pod-labels`)."""
    cgroup, proc = fs
    client = FakeDockerClient()
    client.add(CID, "nginx", labels={
        "io.kubernetes.pod.name": "nginx-pod-1", "io.kubernetes.pod.namespace": "default",
        "annotation.d4c.conformance/pod-labels": json.dumps({"app": "nginx"}),
        POD_LABEL_PREFIX + "owner": "drohan"})
    cg = make_cgroup(cgroup, f"docker/{CID}")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    assert dict(cache.lookup(cg).pod.labels) == {"owner": "drohan"}


def test_pod_labels_from_cri_dockerd_sandbox(fs):
    cgroup, proc = fs
    client = FakeDockerClient()
    client.add(CID2, "registry.k8s.io/pause:3.9", name="k8s_POD_x", labels={
        "io.kubernetes.pod.name": "web-1", "io.kubernetes.docker.type": "podsandbox",
        "annotation.kubernetes.io/config.seen": "x", "app": "web", "tier": "front"})
    client.add(CID, "nginx", labels={"io.kubernetes.pod.name": "web-1", "io.kubernetes.sandbox.id": CID2,
                                     "io.kubernetes.pod.namespace": "shop"})
    cg = make_cgroup(cgroup, f"docker/{CID}")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    assert dict(cache.lookup(cg).pod.labels) == {"app": "web", "tier": "front"}


def test_bare_image_id_uses_a_tag_docker_knows(fs):
    cgroup, proc = fs
    client = FakeDockerClient()
    image_id = "sha256:" + "c" * 64
    client.image_tags[image_id] = ["debian:bookworm"]
    client.add(CID, image_id, image_id=image_id)
    client.add(CID2, "sha256:" + "d" * 64, image_id="sha256:" + "d" * 64)  # untagged image
    cg1 = make_cgroup(cgroup, f"docker/{CID}")
    cg2 = make_cgroup(cgroup, f"docker/{CID2}")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()
    assert cache.lookup(cg1).image.full_name == "docker.io/library/debian:bookworm"
    assert cache.lookup(cg2).image is None  # unknown, not invented


def test_miss_refreshes_once_then_is_remembered(fs):
    cgroup, proc = fs
    now = [100.0]
    client = FakeDockerClient()
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, negative_ttl=1.0, clock=lambda: now[0])
    host_cg = make_cgroup(cgroup, "user.slice")
    assert cache.lookup(host_cg) is None
    calls = client.list_calls
    assert cache.lookup(host_cg) is None
    assert client.list_calls == calls  # within the ttl: no second daemon round-trip
    # A container that started before its `start` event arrived: found by the refresh on miss.
    client.add(CID, "nginx")
    cg = make_cgroup(cgroup, f"docker/{CID}")
    assert cache.lookup(cg).id == CID
    now[0] += 2
    assert cache.lookup(host_cg) is None
    assert client.list_calls == calls + 2


def test_events_start_and_destroy(fs):
    cgroup, proc = fs
    client = FakeDockerClient()
    changes = []
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, on_change=lambda: changes.append(1))
    cache.start_events()
    try:
        assert client.events_filters == {"type": "container", "event": ["start", "destroy"]}
        client.add(CID, "nginx")
        cg = make_cgroup(cgroup, f"system.slice/docker-{CID}.scope")
        client.stream.push({"Type": "container", "Action": "start", "Actor": {"ID": CID, "Attributes": {}}})
        deadline = time.monotonic() + 5
        while cache.get(CID) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.containers() == {cg: cache.get(CID)}
        assert changes
        # die keeps it (late ring-buffer records still resolve); destroy forgets it.
        client.stream.push({"Type": "container", "Action": "die", "id": CID})
        client.stream.push({"Type": "container", "Action": "destroy", "id": CID})
        del client.running[CID]
        while cache.get(CID) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.get(CID) is None
    finally:
        cache.close()
    assert client.stream.closed.is_set()


def test_daemon_down_keeps_what_is_known(fs):
    cgroup, proc = fs
    client = FakeDockerClient()
    client.add(CID, "nginx")
    cg = make_cgroup(cgroup, f"docker/{CID}")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    cache.refresh()

    def boom(**_kw):
        raise ConnectionError("daemon gone")

    client.containers.list = boom
    cache.refresh()
    assert cache.lookup(cg).id == CID

