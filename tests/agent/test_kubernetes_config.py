"""config.py's `kubernetes:` section: parsed with lines, and checked against the client's own
loader when the agent loads its configuration (agent.load_agent_config)."""

from __future__ import annotations

import argparse
import io

import pytest

from reference_agent.agent import load_agent_config
from reference_agent.config import (
    IN_CLUSTER,
    ConfigError,
    KubernetesConfig,
    parse_config,
)

from .kube_api import KubeApi


def test_defaults_and_values():
    cfg = parse_config("output_dir: /tmp/x\nkubernetes:\n  api: in-cluster\n  node_name: n1\n"
                       "  cache_ttl: 30\n  request_timeout: 2.5\n", "a.yaml")
    assert cfg.kubernetes == KubernetesConfig(api=IN_CLUSTER, node_name="n1", cache_ttl=30.0, request_timeout=2.5)
    assert (cfg.kubernetes.file, cfg.kubernetes.line) == ("a.yaml", 3)
    assert parse_config("kubernetes:\n  api: /etc/kube/config\n").kubernetes.api == "/etc/kube/config"
    assert parse_config("namespace: x\n").kubernetes is None
    assert parse_config("kubernetes:\n").kubernetes is None  # explicit null = not configured


@pytest.mark.parametrize(
    "text, expected",
    [
        ("kubernetes: in-cluster\n", "a.yaml:1:13: kubernetes: must be a mapping with at least `api`"),
        ("kubernetes:\n  - api\n", "a.yaml:2:3: kubernetes: must be a mapping with at least `api`"),
        ("kubernetes:\n  node_name: n\n", "a.yaml:2:3: kubernetes.api: missing (set 'in-cluster' or a kubeconfig path)"),
        ("kubernetes:\n  api: kubeconfig\n",
         "a.yaml:2:8: kubernetes.api: must be 'in-cluster' or an absolute kubeconfig path, got 'kubeconfig'"),
        ("kubernetes:\n  api: in-cluster\n  server: x\n",
         "a.yaml:3:3: kubernetes.server: unknown setting (known: api, cache_ttl, node_name, request_timeout)"),
        ("kubernetes:\n  api: in-cluster\n  api: in-cluster\n", "a.yaml:3:3: kubernetes.api: set twice"),
        ("kubernetes:\n  api: in-cluster\n  cache_ttl: 0\n",
         "a.yaml:3:14: kubernetes.cache_ttl: must be a positive number of seconds, got '0'"),
        ("kubernetes:\n  api: in-cluster\n  request_timeout: soon\n",
         "a.yaml:3:20: kubernetes.request_timeout: must be a positive number of seconds, got 'soon'"),
        ("kubernetes:\n  api: in-cluster\n  cache_ttl: true\n",
         "a.yaml:3:14: kubernetes.cache_ttl: must be a positive number of seconds, got 'true'"),
        ("kubernetes:\n  api: in-cluster\n  node_name: ''\n", "a.yaml:3:14: kubernetes.node_name: must be a node name, got ''"),
        ("kubernetes:\n  api: in-cluster\n  node_name: [a]\n",
         "a.yaml:3:14: kubernetes.node_name: must be a single value, not a list or mapping"),
        ("kubernetes:\n  api: in-cluster\nkubernetes:\n  api: in-cluster\n", "a.yaml:3:1: kubernetes: set twice"),
    ],
)
def test_bad_kubernetes_section_is_one_located_line(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "a.yaml")
    assert str(info.value) == expected


def test_loading_the_config_builds_the_client_configuration(tmp_path):
    kubeconfig = KubeApi().write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    good = tmp_path / "good.yaml"
    good.write_text(f"kubernetes:\n  api: {kubeconfig}\n")
    assert load_agent_config(good, environ={}).kubernetes.api == str(kubeconfig)


@pytest.mark.parametrize(
    "kubeconfig_text, message",
    [
        (None, "no such file"),
        ("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n", "kubeconfig"),
        ("{not yaml: [", "kubeconfig"),
    ],
)
def test_unusable_kubeconfig_is_a_config_error_at_the_api_line(tmp_path, kubeconfig_text, message):
    kubeconfig = tmp_path / "kubeconfig"
    if kubeconfig_text is not None:
        kubeconfig.write_text(kubeconfig_text)
    path = tmp_path / "agent.yaml"
    path.write_text(f"namespace: default\nkubernetes:\n  api: {kubeconfig}\n")
    with pytest.raises(ConfigError) as info:
        load_agent_config(path, environ={})
    text = str(info.value)
    assert text.startswith(f"{path}:3:8: kubernetes.api: kubeconfig {kubeconfig}"), text
    assert message in text and "\n" not in text


def test_in_cluster_outside_a_cluster_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    path = tmp_path / "agent.yaml"
    path.write_text("kubernetes:\n  api: in-cluster\n")
    with pytest.raises(ConfigError) as info:
        load_agent_config(path, environ={})
    assert str(info.value).startswith(f"{path}:2:8: kubernetes.api: in-cluster service account: ")


def test_d4c_agent_run_exits_2_on_an_unusable_kubeconfig(tmp_path):
    """Through the real CLI command: exit 2 and one line, before the BPF LSM probe (exit 3 here)."""
    from reference_agent.cli import run_agent_command

    policy = tmp_path / "p.yaml"
    policy.write_text("file:\n  selectors:\n    - name: s\n      operation: [createFile]\n"
                      "  responses:\n    - match: [s]\n      actions: [log]\n")
    config = tmp_path / "agent.yaml"
    config.write_text(f"kubernetes:\n  api: {tmp_path / 'missing'}\n")
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(policy=str(policy), config=str(config), output_dir=None, verbose=False)
    assert run_agent_command(args, out, err) == 2
    assert err.getvalue() == f"{config}:2:8: kubernetes.api: kubeconfig {tmp_path / 'missing'}: no such file\n"
