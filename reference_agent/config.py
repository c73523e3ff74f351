"""The reference agent's own configuration file (not the policy: that is reference_agent.policy).

A flat YAML mapping; every key is optional::

    output_dir: /var/log/d4c           # one NDJSON file per data stream is written here
    namespace: default                 # data_stream.namespace (ECS rules: lowercase, no '-')
    stdout: false                      # also write every document to stdout
    state_dir: /var/lib/d4c            # agent id, shipper cursors
    elasticsearch_url: http://es:9200  # absent = no shipping, NDJSON files only
    package_policy_id: 4c9cbba0-...    # -> cloud_defend.package_policy_id
    package_policy_version: 2          # -> cloud_defend.package_policy_version
    cluster_id: "12345"                # -> orchestrator.cluster.id (default: kube-system's uid)
    cluster_name: website              # -> orchestrator.cluster.name
    heartbeat_interval: 60             # seconds between metrics-cloud_defend.heartbeat documents
    metrics_interval: 60               # seconds between metrics-cloud_defend.metrics documents
    kubernetes:                        # absent = $KUBECONFIG if set, else Docker's facts only
      api: in-cluster                  # or an absolute path to a kubeconfig file
      node_name: node-1                # default: $NODE_NAME (downward API), else the host name
      cache_ttl: 60                    # seconds a one-off GET answer is trusted (no watch)
      request_timeout: 5               # seconds per API request

Parsed with the hardened composer of d4c_yaml so that every error names the line and column
of the offending key or value: a bad file gives one `ConfigError` whose str() is
`FILE:LINE:COLUMN: field: message`. The
caller (the agent's CLI) prints it and exits 2; it never becomes a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

import d4c_yaml

DEFAULT_OUTPUT_DIR = Path("/var/log/d4c")
DEFAULT_STATE_DIR = Path("/var/lib/d4c")
EXIT_BAD_CONFIG = 2
DEFAULT_HEARTBEAT_INTERVAL_S = 60.0
DEFAULT_METRICS_INTERVAL_S = 60.0
# Shorter intervals would make the agent's own documents a load of their own.
MIN_STATUS_INTERVAL_S = 1.0

# ECS data_stream.namespace: Elasticsearch index-name rules plus "no '-'", at most 100 chars.
_NAMESPACE_FORBIDDEN = set('\\/*?"<>| ,#:-')


class ConfigError(Exception):
    """A configuration problem located in its file; str() is the one-line report."""

    def __init__(self, file: str, line: int | None, field: str, message: str, column: int | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        where = file if line is None else f"{file}:{line}" if column is None else f"{file}:{line}:{column}"
        super().__init__(f"{where}: {field}: {message}")


IN_CLUSTER = "in-cluster"


@dataclass(frozen=True)
class KubernetesConfig:
    """Where the Kubernetes API is (metadata/kubernetes.py reads pod labels from it).

    `api` is IN_CLUSTER (the pod's service account) or an absolute kubeconfig path. `file` and
    `line` locate the `api` value, so a kubeconfig that turns out unusable when the client is
    built is still reported at its line (load_config does that check)."""

    api: str
    node_name: str | None = None
    cache_ttl: float = 60.0
    request_timeout: float = 5.0
    file: str = field(default="<config>", compare=False)
    line: int | None = field(default=None, compare=False)
    column: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AgentConfig:
    output_dir: Path = DEFAULT_OUTPUT_DIR
    namespace: str = "default"
    stdout: bool = False
    state_dir: Path = DEFAULT_STATE_DIR
    elasticsearch_url: str | None = None
    package_policy_id: str | None = None
    package_policy_version: int | None = None
    cluster_id: str | None = None
    cluster_name: str | None = None
    kubernetes: KubernetesConfig | None = None
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL_S
    metrics_interval: float = DEFAULT_METRICS_INTERVAL_S


def _check_namespace(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value.encode("utf-8", "surrogatepass")) > 100:  # "\ud800" is a str YAML allows
        return "longer than 100 bytes"
    if value != value.lower():
        return "must be lowercase"
    bad = sorted(set(value) & _NAMESPACE_FORBIDDEN)
    if bad:
        return f"must not contain {' '.join(repr(c) for c in bad)}"
    if value.startswith(("_", "+")) or value in (".", ".."):
        return "not a valid data-stream name part"
    return None


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # YAML's "\ud800" escape makes such a str
        return False
    return True


def _check_url(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        parts.hostname  # noqa: B018 - parses the netloc: `http://[x` raises here
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    return None


# key -> (python type(s) accepted from YAML, extra check or None)
_STR_FIELDS = {"namespace", "elasticsearch_url", "package_policy_id", "cluster_id", "cluster_name"}
_PATH_FIELDS = {"output_dir", "state_dir"}
_BOOL_FIELDS = {"stdout"}
_INT_FIELDS = {"package_policy_version"}
_INTERVAL_FIELDS = {"heartbeat_interval", "metrics_interval"}
_CHECKS = {"namespace": _check_namespace, "elasticsearch_url": _check_url}
_MAPPING_FIELDS = {"kubernetes"}
KNOWN_FIELDS = _STR_FIELDS | _PATH_FIELDS | _BOOL_FIELDS | _INT_FIELDS | _MAPPING_FIELDS | _INTERVAL_FIELDS
KUBERNETES_FIELDS = {"api", "node_name", "cache_ttl", "request_timeout"}


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _fail(file: str, node: yaml.Node, field_name: str, message: str) -> ConfigError:
    return ConfigError(file, _line(node), field_name, message, node.start_mark.column + 1)


def _value(file: str, node: yaml.Node, field_name: str) -> object:
    """A scalar's YAML value (true, 12, null...); a value YAML cannot build is a ConfigError."""
    try:
        return d4c_yaml.construct_scalar(node)
    except d4c_yaml.YamlError as exc:
        raise ConfigError(file, exc.line, field_name, exc.message, exc.column) from None


def parse_config(text: str, file: str = "<config>") -> AgentConfig:
    """Parse config text; raise ConfigError (first problem found) when it is not valid."""
    try:
        root = d4c_yaml.compose(text)
    except d4c_yaml.YamlError as exc:
        raise ConfigError(file, exc.line, "yaml", exc.message, exc.column) from None
    if root is None:
        return AgentConfig()
    if not isinstance(root, yaml.MappingNode):
        raise _fail(file, root, "config", "must be a mapping of settings")

    values: dict[str, object] = {}
    seen: set[str] = set()
    for key_node, value_node in root.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _fail(file, key_node, "config", "keys must be plain strings")
        key = key_node.value
        if key not in KNOWN_FIELDS:
            known = ", ".join(sorted(KNOWN_FIELDS))
            raise _fail(file, key_node, key, f"unknown setting (known: {known})")
        if key in seen:
            raise _fail(file, key_node, key, "set twice")
        seen.add(key)
        if key in _MAPPING_FIELDS:
            values[key] = _parse_kubernetes(text, file, value_node)
            continue
        if not isinstance(value_node, yaml.ScalarNode):
            raise _fail(file, value_node, key, "must be a single value, not a list or mapping")
        # Construct the scalar with YAML's own resolution (true/false, ints, null).
        value = _value(file, value_node, key)
        if value is None:
            continue  # explicit null = default
        if isinstance(value, str) and not _encodable(value):
            raise _fail(file, value_node, key, "must be UTF-8 text (a lone surrogate such as \"\\ud800\" is not)")
        if key in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise _fail(file, value_node, key, f"must be true or false, got {value_node.value!r}")
        elif key in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _fail(file, value_node, key, f"must be a non-negative integer, got {value_node.value!r}")
        elif key in _INTERVAL_FIELDS:
            # NaN passes every comparison and infinity would mean "never": neither is an interval.
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value < MIN_STATUS_INTERVAL_S):
                raise _fail(file, value_node, key,
                            f"must be a number of seconds, at least {MIN_STATUS_INTERVAL_S:g}, got {value_node.value!r}")
            value = float(value)
        elif key in _PATH_FIELDS:
            if not isinstance(value, str) or not value.startswith("/"):
                raise _fail(file, value_node, key, f"must be an absolute path, got {value_node.value!r}")
            value = Path(value)
        else:
            # Ids such as cluster_id: 12345 arrive as ints; they are strings in ECS.
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise _fail(file, value_node, key, f"must be a string, got {value_node.value!r}")
            value = str(value)
            check = _CHECKS.get(key)
            problem = check(value) if check else None
            if problem:
                raise _fail(file, value_node, key, problem)
        values[key] = value
    return AgentConfig(**values)  # type: ignore[arg-type]


def _parse_kubernetes(text: str, file: str, node: yaml.Node) -> KubernetesConfig | None:
    """The `kubernetes:` mapping; null = not configured."""
    if isinstance(node, yaml.ScalarNode) and _value(file, node, "kubernetes") is None:
        return None
    if not isinstance(node, yaml.MappingNode):
        raise _fail(file, node, "kubernetes", "must be a mapping with at least `api`")
    values: dict[str, object] = {}
    api_line: int | None = None
    api_column: int | None = None
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        field_name = f"kubernetes.{key}"
        if key not in KUBERNETES_FIELDS:
            known = ", ".join(sorted(KUBERNETES_FIELDS))
            raise _fail(file, key_node, field_name, f"unknown setting (known: {known})")
        if key in values:
            raise _fail(file, key_node, field_name, "set twice")
        line = _line(value_node)
        if not isinstance(value_node, yaml.ScalarNode):
            raise _fail(file, value_node, field_name, "must be a single value, not a list or mapping")
        value = _value(file, value_node, field_name)
        if key == "api":
            if not isinstance(value, str) or not (value == IN_CLUSTER or value.startswith("/")):
                raise _fail(file, value_node, field_name,
                                  f"must be {IN_CLUSTER!r} or an absolute kubeconfig path, got {value_node.value!r}")
            api_line, api_column = line, value_node.start_mark.column + 1
        elif key == "node_name":
            if not isinstance(value, str) or not value:
                raise _fail(file, value_node, field_name, f"must be a node name, got {value_node.value!r}")
        else:  # cache_ttl, request_timeout: seconds
            # NaN passes `<= 0` and infinity would mean "never time out": neither is a duration.
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise _fail(file, value_node, field_name, f"must be a positive number of seconds, got {value_node.value!r}")
            value = float(value)
        values[key] = value
    if "api" not in values:
        raise _fail(file, node, "kubernetes.api", f"missing (set {IN_CLUSTER!r} or a kubeconfig path)")
    return KubernetesConfig(file=file, line=api_line, column=api_column, **values)  # type: ignore[arg-type]


def load_config(path: str | Path) -> AgentConfig:
    """Read and parse a config file; an unreadable file is a ConfigError too. Whether a
    `kubernetes:` section's API can be used is the agent's check (agent.load_agent_config):
    this module only parses."""
    path = Path(path)
    try:
        text = d4c_yaml.decode(path.read_bytes())
    except OSError as exc:
        raise ConfigError(str(path), None, "config", f"cannot read: {exc.strerror or exc}") from None
    except d4c_yaml.YamlError as exc:
        raise ConfigError(str(path), exc.line, "config", exc.message, exc.column) from None
    return parse_config(text, str(path))


KUBECONFIG_ENV = "KUBECONFIG"


def kubernetes_from_environment(config: AgentConfig, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """A config without a `kubernetes:` section reads pods through `$KUBECONFIG` when it is set,
    as kubectl and every client-go program do (the conformance suite hands its API server over
    that way). The config's own section, when there is one, wins."""
    environ = os.environ if environ is None else environ
    path = environ.get(KUBECONFIG_ENV, "")
    if config.kubernetes is not None or not path:
        return config
    if os.pathsep in path:
        raise ConfigError(f"${KUBECONFIG_ENV}", None, "kubernetes.api",
                          f"one kubeconfig file, not a list: {path!r} (set kubernetes.api in the config)")
    cfg = KubernetesConfig(api=os.path.abspath(path), file=f"${KUBECONFIG_ENV}")
    return dataclasses.replace(config, kubernetes=cfg)
