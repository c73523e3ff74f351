"""deploy/: the manifests are what the Kubernetes API, the agent's CLI, its config loader, its
policy validator and its Kubernetes calls accept — checked with those very parsers.

No cluster is available here (docs/deploy.md): nothing is applied. What is checked: every
manifest deserialises into the official client's models without losing a field (a misspelt
key would be dropped by the model, so the round trip differs), the ConfigMap's policy passes
`d4c policy validate`, its agent config passes reference_agent.config, the DaemonSet command
parses with `d4c agent run`'s real argparse, the files it names are where the ConfigMap is
mounted, and the ClusterRole grants exactly the calls metadata/kubernetes.py makes (recorded
by the project's test API server).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from agent.kube_api import KubeApi, pod_json

from d4c.cli import build_parser
from d4c.cli import main as d4c_main
from reference_agent.config import IN_CLUSTER, KubernetesConfig, parse_config
from reference_agent.metadata import kubernetes as agent_kubernetes

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


class _Response:
    """The surface ApiClient.deserialize reads in clients before v34 (a response's `data`)."""

    def __init__(self, obj: Any) -> None:
        self.data = json.dumps(obj)


def deserialize(client: kubernetes.client.ApiClient, obj: Any, model: str) -> Any:
    """The client's own JSON -> model loading (its signature changed in client v34)."""
    if "content_type" in inspect.signature(client.deserialize).parameters:
        return client.deserialize(json.dumps(obj), model, "application/json")
    return client.deserialize(_Response(obj), model)


def documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def model_name(doc: dict[str, Any]) -> str:
    version = doc["apiVersion"].split("/")[-1]
    return version.capitalize() + doc["kind"]  # apps/v1 DaemonSet -> V1DaemonSet


def one(kind: str) -> dict[str, Any]:
    found = [doc for _path, doc in documents() if doc["kind"] == kind]
    assert len(found) == 1, f"{kind}: {len(found)} documents"
    return found[0]


def test_the_expected_objects_are_there():
    kinds = sorted(doc["kind"] for _path, doc in documents())
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Namespace", "ServiceAccount"]


@pytest.mark.parametrize("path, doc", documents(), ids=lambda v: v.name if isinstance(v, Path) else v.get("kind"))
def test_manifest_deserialises_into_the_clients_model_without_loss(path, doc):
    client = kubernetes.client.ApiClient()
    name = model_name(doc)
    assert hasattr(kubernetes.client, name), f"{path.name}: no model {name} in the kubernetes client"
    model = deserialize(client, doc, name)  # client-side validation of required fields
    assert isinstance(model, getattr(kubernetes.client, name))
    assert client.sanitize_for_serialization(model) == doc, f"{path.name}: a field the model does not know"


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    image = one("DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert [i["name"] for i in kustomization["images"]] == [image.split(":")[0]]


def test_everything_namespaced_is_in_the_namespace():
    namespace = one("Namespace")["metadata"]["name"]
    for path, doc in documents():
        if doc["kind"] in ("ServiceAccount", "ConfigMap", "DaemonSet"):
            assert doc["metadata"]["namespace"] == namespace, path.name


def agent_container() -> dict[str, Any]:
    containers = one("DaemonSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_configmap_policy_passes_d4c_policy_validate(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(one("ConfigMap")["data"]["policy.yaml"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = d4c_main(["policy", "validate", str(policy)])
    assert code == 0, out.getvalue() + err.getvalue()


def test_configmap_agent_config_passes_the_agent_config_loader():
    config = parse_config(one("ConfigMap")["data"]["agent.yaml"], "configmap:agent.yaml")
    assert config.kubernetes is not None and config.kubernetes.api == IN_CLUSTER
    mounts = {m["mountPath"]: m["name"] for m in agent_container()["volumeMounts"]}
    volumes = {v["name"]: v for v in one("DaemonSet")["spec"]["template"]["spec"]["volumes"]}
    # Where the agent writes (events, agent id) is the node's disk, not the container's.
    for directory in (config.output_dir, config.state_dir):
        assert str(directory) in mounts, f"{directory} is not mounted"
        assert volumes[mounts[str(directory)]]["hostPath"]["path"] == str(directory)


NSENTER_HOST_CGROUP_NS = ["nsenter", "--cgroup=/proc/1/ns/cgroup", "--"]


def d4c_command() -> list[str]:
    """The DaemonSet's command without its nsenter prefix, which must enter the host's cgroup
    namespace and nothing else (docs/deploy.md: cgroup namespaces)."""
    command = agent_container()["command"]
    assert command[:3] == NSENTER_HOST_CGROUP_NS, command[:3]
    return command[3:]


def test_daemonset_command_is_d4c_agent_run_with_its_real_options():
    command = d4c_command()
    assert command[0] == "d4c"  # the console script pyproject.toml installs
    args = build_parser(only="agent").parse_args(command[1:])  # SystemExit(2) on a wrong option
    assert (args.command, args.agent_command) == ("agent", "run")
    assert args.func.__name__ == "run_agent_command"
    # --policy and --config name the ConfigMap's keys where the ConfigMap is mounted.
    mounts = {m["name"]: m["mountPath"] for m in agent_container()["volumeMounts"]}
    config_volume = next(v for v in one("DaemonSet")["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    files = {f"{mounts[config_volume['name']]}/{item['path']}": item["key"] for item in config_volume["configMap"]["items"]}
    assert files[args.policy] == "policy.yaml" and files[args.config] == "agent.yaml"
    assert set(files.values()) <= set(one("ConfigMap")["data"])


def test_daemonset_gives_the_agent_what_it_reads_from_the_node():
    import docker.constants

    spec = one("DaemonSet")["spec"]["template"]["spec"]
    container = agent_container()
    assert spec["hostPID"] is True  # /proc/<pid> of the containers' processes
    assert container["securityContext"]["privileged"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env[agent_kubernetes.NODE_NAME_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    docker_socket = docker.constants.DEFAULT_UNIX_SOCKET.removeprefix("http+unix://")  # docker.from_env()
    for path in ("/sys/fs/bpf", "/sys/kernel/security", "/sys/fs/cgroup", docker_socket, "/var/log/d4c"):
        assert volumes[mounts[path]]["hostPath"]["path"] == path


def test_rbac_grants_exactly_what_the_agent_calls(tmp_path):
    """Run the agent's PodDirectory (every call it has: GET, kube-system's uid, then list+watch of
    the node) against
    the project's test API server and compare the (verb, resource) pairs with the ClusterRole."""
    api = KubeApi()
    url = api.start()
    try:
        api.put(pod_json("default", "web-1", node="node-1"))
        cfg = KubernetesConfig(api=str(api.write_kubeconfig(tmp_path / "kubeconfig", url)), node_name="node-1")
        pods = agent_kubernetes.pod_directory(cfg, environ={})
        pods.fetch("default", "web-1")
        assert pods.cluster_uid()
        pods.start()
        deadline = time.monotonic() + 15
        while ("watch", "pods") not in api.verbs() and time.monotonic() < deadline:
            time.sleep(0.02)
        pods.close()
    finally:
        api.stop()
    assert all(path.startswith("/api/v1/") for _v, _r, path in api.requests)  # core group only
    called = {("", resource, verb) for verb, resource in api.verbs()}
    role = one("ClusterRole")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == called
    # The namespace rule is for kube-system alone (least privilege: no other namespace is read).
    assert [r.get("resourceNames") for r in role["rules"] if "namespaces" in r["resources"]] == [["kube-system"]]
    binding = one("ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    account = one("ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    assert one("DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_copies_existing_paths_and_runs_the_daemonset_command():
    for instruction, rest in dockerfile_instructions():
        if instruction == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        if instruction == "FROM":
            assert rest.startswith("debian:bookworm"), rest
    cmd = [json.loads(rest) for instruction, rest in dockerfile_instructions() if instruction == "CMD"]
    assert cmd == [d4c_command()]
    env = " ".join(rest for instruction, rest in dockerfile_instructions() if instruction == "ENV")
    bpf_dir = re.search(r"D4C_BPF_BUILD=(\S+)", env).group(1)
    support = (REPO / "reference_agent" / "kernel" / "support.py").read_text()
    assert '"D4C_BPF_BUILD"' in support  # the variable the agent reads for its objects' directory
    copies = [rest for instruction, rest in dockerfile_instructions() if instruction == "COPY" and rest.startswith("--from=bpf")]
    # the objects and the ABI mirror generated from their BTF (reference_agent/kernel/abi.py loads it)
    assert copies == [f"--from=bpf /src/bpf/build/*.bpf.o /src/bpf/build/d4c_abi.py {bpf_dir}/"]
    assert any(instruction == "RUN" and "make -C bpf" in rest for instruction, rest in dockerfile_instructions())


REMOVAL = DEPLOY / "uninstall" / "remove-enforcement.yaml"


def test_the_removal_daemonset_runs_remove_enforcement_on_the_agents_pin_dir():
    """D33: the agent's pins outlive its DaemonSet; the documented removal path unpins the
    directory the agent pins in, with the real CLI's options, with the host's bpffs mounted."""
    doc = yaml.safe_load(REMOVAL.read_text())
    client = kubernetes.client.ApiClient()
    assert client.sanitize_for_serialization(deserialize(client, doc, model_name(doc))) == doc
    container = doc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == agent_container()["image"]
    shell = container["command"][2]
    removal = build_parser(only="agent").parse_args(shell.split("&&")[0].split()[1:])
    assert removal.func.__name__ == "run_remove_command"
    agent = build_parser(only="agent").parse_args(d4c_command()[1:])
    assert agent.pin_dir is not None and removal.pin_dir == agent.pin_dir
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/sys/fs/bpf"]]["hostPath"]["path"] == "/sys/fs/bpf"


def _strategic_delete(base: list[dict[str, Any]], patch: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Kubernetes' strategic merge of a list with merge key `key`, for `$patch: delete` items
    (all the containerd overlay uses): the base items whose key a delete names are dropped."""
    gone = {item[key] for item in patch if item.get("$patch") == "delete"}
    assert all(item.get("$patch") == "delete" for item in patch), "only deletions are modelled here"
    return [item for item in base if item[key] not in gone]


def test_containerd_overlay_drops_exactly_the_docker_socket():
    """deploy/containerd/: the base with the Docker socket volume and its mount deleted (by the
    merge keys kubectl uses: volumes by `name`, volumeMounts by `mountPath`), nothing else."""
    overlay = yaml.safe_load((DEPLOY / "containerd" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../"]
    [entry] = overlay["patches"]
    assert entry["target"] == {"kind": "DaemonSet", "name": one("DaemonSet")["metadata"]["name"]}
    patch = yaml.safe_load(entry["patch"])
    assert (patch["kind"], patch["metadata"]) == ("DaemonSet", {k: one("DaemonSet")["metadata"][k]
                                                                for k in ("name", "namespace")})
    base = one("DaemonSet")["spec"]["template"]["spec"]
    pspec = patch["spec"]["template"]["spec"]
    [pcontainer] = pspec["containers"]
    container = agent_container()
    assert pcontainer["name"] == container["name"]
    mounts = _strategic_delete(container["volumeMounts"], pcontainer["volumeMounts"], "mountPath")
    volumes = _strategic_delete(base["volumes"], pspec["volumes"], "name")
    removed_mounts = {m["mountPath"] for m in container["volumeMounts"]} - {m["mountPath"] for m in mounts}
    removed_volumes = {v["name"] for v in base["volumes"]} - {v["name"] for v in volumes}
    assert removed_mounts == {"/var/run/docker.sock"}
    assert [v["hostPath"]["path"] for v in base["volumes"] if v["name"] in removed_volumes] == ["/var/run/docker.sock"]
    assert {m["name"] for m in mounts} <= {v["name"] for v in volumes}  # no mount of a deleted volume
    assert "/sys/fs/cgroup" in {m["mountPath"] for m in mounts}  # what identifies containers there
