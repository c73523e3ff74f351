"""reference_agent.config: defaults, every field, and one-line located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_agent.config import AgentConfig, ConfigError, load_config, parse_config


def test_empty_file_gives_defaults():
    assert parse_config("") == AgentConfig()
    assert AgentConfig().namespace == "default"
    assert AgentConfig().output_dir == Path("/var/log/d4c")


def test_every_field(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        "output_dir: /tmp/out\n"
        "namespace: prod\n"
        "stdout: true\n"
        "state_dir: /tmp/state\n"
        "elasticsearch_url: http://127.0.0.1:9200\n"
        "package_policy_id: 4c9cbba0-c812-11ed-a8dd-91ec403e4f03\n"
        "package_policy_version: 2\n"
        "cluster_id: 12345\n"
        "cluster_name: website\n"
    )
    cfg = load_config(path)
    assert cfg == AgentConfig(
        output_dir=Path("/tmp/out"), namespace="prod", stdout=True, state_dir=Path("/tmp/state"),
        elasticsearch_url="http://127.0.0.1:9200", package_policy_id="4c9cbba0-c812-11ed-a8dd-91ec403e4f03",
        package_policy_version=2, cluster_id="12345", cluster_name="website",
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("namespace: default\nnamspace: x\n", "agent.yaml:2:1: namspace: unknown setting"),
        ("stdout: yes please\n", "agent.yaml:1:9: stdout: must be true or false"),
        ("\n\nnamespace: Prod\n", "agent.yaml:3:12: namespace: must be lowercase"),
        ("namespace: my-ns\n", "agent.yaml:1:12: namespace: must not contain '-'"),
        ("package_policy_version: two\n", "agent.yaml:1:25: package_policy_version: must be a non-negative integer"),
        ("output_dir: relative/dir\n", "agent.yaml:1:13: output_dir: must be an absolute path"),
        ("elasticsearch_url: es:9200\n", "agent.yaml:1:20: elasticsearch_url: must be an http:// or https:// URL"),
        ("cluster_name: [a, b]\n", "agent.yaml:1:15: cluster_name: must be a single value"),
        ("- a\n- b\n", "agent.yaml:1:1: config: must be a mapping"),
        ("stdout: true\nstdout: false\n", "agent.yaml:2:1: stdout: set twice"),
        ("namespace: [unclosed\n", "agent.yaml:2:1: yaml:"),
    ],
)
def test_errors_are_one_located_line(tmp_path, text, expected):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(tmp_path) + "/" + expected), message
    assert "\n" not in message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(info.value).startswith(f"{tmp_path}/nope.yaml: config: cannot read")
