"""Table-driven tests of the reference evaluator: D5, D10–D16, D19, D22, and operations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reference_agent.policy import (
    OperationError,
    evaluate,
    image_parts,
    parse_operation,
    parse_operations,
    selector_matches,
    validate_policy_document,
)

IMAGE = "docker.io/library/nginx:latest"
K8S = {
    "type": "kubernetes",
    "cluster": {"id": "c-1", "name": "staging"},
    "namespace": "prod-web",
    "resource": {"name": "nginx-pod-1", "labels": {"app": "nginx", "owner": "drohan", "empty": "", "app.kubernetes.io/name": "web"}},
}


def file_op(path: str = "/usr/bin/x", operation: str = "createFile", mount: str = "root", **extra: Any) -> dict:
    op: dict = {"kind": "file", "operation": operation, "file": {"path": path, "mount": mount}, "container": {"image": IMAGE}}
    op.update(extra)
    return op


def proc_op(executable: str = "/bin/bash", operation: str = "exec", **extra: Any) -> dict:
    op: dict = {
        "kind": "process",
        "operation": operation,
        "container": {"image": IMAGE},
        "process": {"executable": executable, "user": {"id": "0", "name": "root"}, "session_leader": {"executable": "/bin/bash", "interactive": True}},
    }
    op.update(extra)
    return op


def one_selector(kind: str, conditions: dict) -> Any:
    doc = {kind: {"selectors": [{"name": "s", **conditions}], "responses": [{"match": ["s"], "actions": ["log"]}]}}
    result = validate_policy_document(doc)
    assert result.valid, result.errors
    section = result.policy.section(kind)
    return result.policy, section.selectors[0]


# (id, kind, conditions, operation, expected match)
SELECTOR_CASES: list[tuple[str, str, dict, dict, bool]] = [
    # D5: operation list; absent = all of the section
    ("D5-listed", "file", {"operation": ["createFile"]}, file_op(), True),
    ("D5-not-listed", "file", {"operation": ["deleteFile"]}, file_op(), False),
    ("D5-absent-matches-all", "file", {"targetFilePath": ["/usr/**"]}, file_op(operation="deleteFile"), True),
    ("D5-process", "process", {"operation": ["fork"]}, proc_op(operation="exec"), False),
    # D10: AND across conditions, OR within a list
    ("D10-and-both", "file", {"operation": ["createFile"], "targetFilePath": ["/usr/bin/*"]}, file_op(), True),
    ("D10-and-one-fails", "file", {"operation": ["createFile"], "targetFilePath": ["/etc/*"]}, file_op(), False),
    ("D10-or-in-list", "file", {"targetFilePath": ["/etc/*", "/usr/bin/*"]}, file_op(), True),
    ("D10-image-or", "file", {"containerImageName": ["redis", "nginx"]}, file_op(), True),
    # D10/D14: labels are ALL required
    ("D14-all-present", "file", {"orchestratorResourceLabel": ["app:nginx", "owner:drohan"]}, file_op(orchestrator=K8S), True),
    ("D14-one-missing", "file", {"orchestratorResourceLabel": ["app:nginx", "owner:someone"]}, file_op(orchestrator=K8S), False),
    ("D14-key-star", "file", {"orchestratorResourceLabel": ["owner:*"]}, file_op(orchestrator=K8S), True),
    ("D14-key-star-empty-value", "file", {"orchestratorResourceLabel": ["empty:*"]}, file_op(orchestrator=K8S), True),
    ("D14-key-star-absent", "file", {"orchestratorResourceLabel": ["environment:*"]}, file_op(orchestrator=K8S), False),
    ("D14-empty-value", "file", {"orchestratorResourceLabel": ["empty:"]}, file_op(orchestrator=K8S), True),
    ("D14-empty-value-not-other", "file", {"orchestratorResourceLabel": ["owner:"]}, file_op(orchestrator=K8S), False),
    ("D14-prefix", "file", {"orchestratorResourceLabel": ["owner:dro*"]}, file_op(orchestrator=K8S), True),
    ("D14-prefix-no", "file", {"orchestratorResourceLabel": ["owner:x*"]}, file_op(orchestrator=K8S), False),
    ("D14-prefixed-key", "file", {"orchestratorResourceLabel": ["app.kubernetes.io/name:web"]}, file_op(orchestrator=K8S), True),
    ("D14-value-case", "file", {"orchestratorResourceLabel": ["app:Nginx"]}, file_op(orchestrator=K8S), False),
    # D11: paths
    ("D11-star-direct-child", "file", {"targetFilePath": ["/usr/bin/*"]}, file_op("/usr/bin/sub/x"), False),
    ("D11-globstar", "file", {"targetFilePath": ["/usr/**"]}, file_op("/usr/bin/sub/x"), True),
    ("D11-normalised-operation-path", "file", {"targetFilePath": ["/usr/bin/*"]}, file_op("/usr//lib/../bin/./x"), True),
    ("D11-process-executable", "process", {"processExecutable": ["/usr/bin/*"]}, proc_op("/usr/bin/curl"), True),
    ("D11-process-executable-no", "process", {"processExecutable": ["/usr/bin/*"]}, proc_op("/bin/bash"), False),
    ("D11-session-leader", "process", {"sessionLeaderExecutable": ["/bin/*sh"]}, proc_op(), True),
    # D12: string wildcards, exact values, case
    ("D12-image-wildcard", "file", {"containerImageName": ["ngi*"]}, file_op(), True),
    ("D12-image-case", "file", {"containerImageName": ["NGINX"]}, file_op(), False),
    ("D12-namespace-wildcard", "file", {"orchestratorNamespace": ["prod-*"]}, file_op(orchestrator=K8S), True),
    ("D12-resource-name", "file", {"orchestratorResourceName": ["nginx-pod-*"]}, file_op(orchestrator=K8S), True),
    ("D12-cluster-id", "file", {"orchestratorClusterId": ["c-1"]}, file_op(orchestrator=K8S), True),
    ("D12-cluster-name-exact", "file", {"orchestratorClusterName": ["stag"]}, file_op(orchestrator=K8S), False),
    ("D6-type", "file", {"orchestratorType": ["kubernetes"]}, file_op(orchestrator=K8S), True),
    # D13: image name / tag / full reference
    ("D13-tag-default", "file", {"containerImageTag": ["latest"]}, file_op(container={"image": "nginx"}), True),
    ("D13-tag", "file", {"containerImageTag": ["1.25"]}, file_op(container={"image": "nginx:1.25"}), True),
    ("D13-full-normalised", "file", {"fullContainerImageName": ["docker.io/library/nginx:latest"]}, file_op(container={"image": "nginx"}), True),
    ("D13-name-last-component", "file", {"containerImageName": ["app"]}, file_op(container={"image": "ghcr.io/org/team/app:2"}), True),
    ("D13-name-not-path", "file", {"containerImageName": ["org/team/app"]}, file_op(container={"image": "ghcr.io/org/team/app:2"}), False),
    # D15: host processes; no orchestrator
    ("D15-host-process", "file", {"targetFilePath": ["/usr/**"]}, {k: v for k, v in file_op().items() if k != "container"}, False),
    ("D15-no-k8s-orchestrator-condition", "file", {"orchestratorNamespace": ["*"]}, file_op(), False),
    ("D15-no-k8s-label-condition", "file", {"orchestratorResourceLabel": ["app:*"]}, file_op(), False),
    ("D15-no-k8s-type-condition", "file", {"orchestratorType": ["kubernetes"]}, file_op(), False),
    ("D15-no-k8s-other-conditions", "file", {"containerImageName": ["nginx"]}, file_op(), True),
    # D16: process attributes
    ("D16-name-basename", "process", {"processName": ["bash"]}, proc_op("/usr/bin/bash"), True),
    ("D16-name-given", "process", {"processName": ["busybox"]}, proc_op("/bin/sh", process={"executable": "/bin/sh", "name": "busybox"}), True),
    ("D16-name-not-truncated", "process", {"processName": ["a-very-long-program-name"]}, proc_op("/opt/a-very-long-program-name"), True),
    ("D16-user-id", "process", {"processUserId": [0]}, proc_op(), True),
    ("D16-user-id-int-op", "process", {"processUserId": ["1000"]}, proc_op(process={"executable": "/bin/sh", "user": {"id": 1000}}), True),
    ("D16-user-name", "process", {"processUserName": ["root"]}, proc_op(), True),
    ("D16-user-name-no", "process", {"processUserName": ["nobody"]}, proc_op(), False),
    ("D16-interactive-true", "process", {"sessionLeaderInteractive": True}, proc_op(), True),
    ("D16-interactive-false", "process", {"sessionLeaderInteractive": False}, proc_op(), False),
    ("D16-interactive-unknown", "process", {"sessionLeaderInteractive": False}, proc_op(process={"executable": "/bin/sh"}), False),
    ("D16-no-process-info", "process", {"processName": ["sh"]}, {k: v for k, v in proc_op().items() if k != "process"}, False),
    ("D16-no-process-info-operation-only", "process", {"operation": ["exec"]}, {k: v for k, v in proc_op().items() if k != "process"}, True),
    # D32: sessionLeaderName (the leader executable's basename, exact) and execMemFd
    ("D32-leader-name-basename", "process", {"sessionLeaderName": ["bash"]}, proc_op(), True),
    ("D32-leader-name-other", "process", {"sessionLeaderName": ["sh"]}, proc_op(), False),
    ("D32-leader-name-given", "process", {"sessionLeaderName": ["busybox"]}, proc_op(process={"executable": "/bin/ls", "session_leader": {"executable": "/bin/sh", "name": "busybox"}}), True),
    ("D32-leader-name-not-path", "process", {"sessionLeaderName": ["bin/bash"]}, proc_op(), False),
    ("D32-leader-name-unknown", "process", {"sessionLeaderName": ["bash"]}, proc_op(process={"executable": "/bin/ls"}), False),
    ("D32-exec-covers-memfd", "process", {"operation": ["exec"]}, proc_op("/memfd:x (deleted)", "execMemFd"), True),
    ("D32-memfd-only-memfd", "process", {"operation": ["execMemFd"]}, proc_op(), False),
    ("D32-memfd-matches-memfd", "process", {"operation": ["execMemFd"]}, proc_op("/memfd:x (deleted)", "execMemFd"), True),
    ("D32-fork-not-memfd", "process", {"operation": ["fork"]}, proc_op("/memfd:x (deleted)", "execMemFd"), False),
    ("D32-no-operation-covers-memfd", "process", {"containerImageName": ["nginx"]}, proc_op("/memfd:x (deleted)", "execMemFd"), True),
    # D19: volume classes
    ("D19-mounts-root", "file", {"ignoreVolumeMounts": True}, file_op(mount="root"), True),
    ("D19-mounts-volume", "file", {"ignoreVolumeMounts": True}, file_op(mount="volume"), False),
    ("D19-mounts-file", "file", {"ignoreVolumeMounts": True}, file_op(mount="file"), False),
    ("D19-files-volume", "file", {"ignoreVolumeFiles": True}, file_op(mount="volume"), True),
    ("D19-files-file", "file", {"ignoreVolumeFiles": True}, file_op(mount="file"), False),
    ("D19-false-is-no-filter", "file", {"ignoreVolumeMounts": False}, file_op(mount="file"), True),
    # sections: a file operation never matches a process selector
    ("kind-mismatch", "process", {"operation": ["exec"]}, file_op(), False),
]


@pytest.mark.parametrize("case_id,kind,conditions,operation,expected", SELECTOR_CASES, ids=[c[0] for c in SELECTOR_CASES])
def test_selector_case(case_id: str, kind: str, conditions: dict, operation: dict, expected: bool) -> None:
    policy, selector = one_selector(kind, conditions)
    op = parse_operation(operation)
    assert selector_matches(selector, op) is expected
    verdict = evaluate(policy, op)
    assert verdict.matched_selectors == (("s",) if expected else ())
    assert verdict.actions == (("log",) if expected else ())


# --- D22: responses --------------------------------------------------------------------------

D22_POLICY = validate_policy_document(
    {
        "file": {
            "selectors": [
                {"name": "bins", "targetFilePath": ["/usr/bin/**"]},
                {"name": "creates", "operation": ["createFile", "createExecutable"]},
                {"name": "tmp", "targetFilePath": ["/tmp/**"]},
                {"name": "nginx", "containerImageName": ["nginx"]},
                {"name": "unused", "targetFilePath": ["/nowhere"]},
            ],
            "responses": [
                {"match": ["bins"], "actions": ["alert", "block"]},
                {"match": ["creates", "nginx"], "exclude": ["tmp"], "actions": ["log"]},
                {"match": ["nginx"], "exclude": ["bins"], "actions": ["log", "alert"]},
                {"match": ["unused", "tmp"], "actions": ["log"]},
            ],
        }
    }
).policy


@pytest.mark.parametrize(
    "path,operation,expected",
    [
        ("/usr/bin/x", "createFile", {"matched_selectors": ["bins", "creates", "nginx"], "actions": ["alert", "block", "log"], "responses": [0, 1]}),
        ("/usr/bin/x", "deleteFile", {"matched_selectors": ["bins", "nginx"], "actions": ["alert", "block", "log"], "responses": [0, 1]}),
        ("/etc/x", "modifyFile", {"matched_selectors": ["nginx"], "actions": ["alert", "log"], "responses": [1, 2]}),
        ("/tmp/x", "createFile", {"matched_selectors": ["tmp", "nginx"], "actions": ["alert", "log"], "responses": [2, 3]}),
    ],
)
def test_d22_responses(path: str, operation: str, expected: dict) -> None:
    assert evaluate(D22_POLICY, parse_operation(file_op(path, operation))).to_json() == expected


def test_d22_nothing_fires_when_only_excluded() -> None:
    policy = validate_policy_document(
        {"file": {"selectors": [{"name": "a", "targetFilePath": ["/x/**"]}, {"name": "b", "targetFilePath": ["/x/y"]}],
                  "responses": [{"match": ["a"], "exclude": ["b"], "actions": ["alert"]}]}}
    ).policy
    assert evaluate(policy, parse_operation(file_op("/x/y"))).to_json() == {"matched_selectors": [], "actions": [], "responses": []}
    assert evaluate(policy, parse_operation(file_op("/x/z"))).to_json() == {"matched_selectors": ["a"], "actions": ["alert"], "responses": [0]}


def test_d22_selector_matched_only_in_exclude_is_not_listed() -> None:
    policy = validate_policy_document(
        {"file": {"selectors": [{"name": "a", "targetFilePath": ["/x/**"]}, {"name": "b", "targetFilePath": ["/x/y"]}, {"name": "c", "targetFilePath": ["/nope"]}],
                  "responses": [{"match": ["a"], "exclude": ["c"], "actions": ["log"]}, {"match": ["c"], "exclude": ["b"], "actions": ["alert"]}]}}
    ).policy
    assert evaluate(policy, parse_operation(file_op("/x/y"))).matched_selectors == ("a",)


def test_evaluate_accepts_a_mapping() -> None:
    assert evaluate(D22_POLICY, file_op("/usr/bin/x")).responses == (0, 1)


def test_a_policy_without_the_section_matches_nothing() -> None:
    assert evaluate(D22_POLICY, parse_operation(proc_op())).to_json()["responses"] == []


# --- D13: image references ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference,parts",
    [
        ("nginx", ("nginx", "latest", "docker.io/library/nginx:latest")),
        ("nginx:1.25", ("nginx", "1.25", "docker.io/library/nginx:1.25")),
        ("library/nginx", ("nginx", "latest", "docker.io/library/nginx:latest")),
        ("docker.io/library/nginx:latest", ("nginx", "latest", "docker.io/library/nginx:latest")),
        ("index.docker.io/library/nginx", ("nginx", "latest", "docker.io/library/nginx:latest")),
        ("elastic/elastic-agent:8.8.0", ("elastic-agent", "8.8.0", "docker.io/elastic/elastic-agent:8.8.0")),
        ("docker.elastic.co/beats/elastic-agent:8.8.0", ("elastic-agent", "8.8.0", "docker.elastic.co/beats/elastic-agent:8.8.0")),
        ("localhost:5000/app", ("app", "latest", "localhost:5000/app:latest")),
        ("localhost/app:v1", ("app", "v1", "localhost/app:v1")),
        ("ghcr.io/org/team/app:2", ("app", "2", "ghcr.io/org/team/app:2")),
        ("busybox@sha256:abc", ("busybox", "latest", "docker.io/library/busybox:latest@sha256:abc")),
        ("busybox:1.36@sha256:abc", ("busybox", "1.36", "docker.io/library/busybox:1.36@sha256:abc")),
    ],
)
def test_image_parts(reference: str, parts: tuple[str, str, str]) -> None:
    assert image_parts(reference) == parts


@pytest.mark.parametrize("reference", ["", " nginx", "nginx:", "a//b", "/nginx"])
def test_bad_image_references(reference: str) -> None:
    with pytest.raises(ValueError):
        image_parts(reference)


# --- operations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj,message",
    [
        ([], "operation: must be an object"),
        ({"operation": "exec"}, "operation.kind: required field is missing"),
        ({"kind": "network", "operation": "exec"}, "operation.kind: must be one of file, process"),
        ({"kind": "process"}, "operation.operation: required field is missing"),
        ({"kind": "process", "operation": "open"}, "operation.operation: must be one of fork, exec"),
        ({"kind": "file", "operation": "exec"}, "operation.operation: exec is a process operation but kind is file"),
        ({"kind": "file", "operation": "createFile"}, "operation.file: required for a file operation"),
        ({"kind": "file", "operation": "createFile", "file": {"mount": "root"}}, "operation.file.path: required field is missing"),
        ({"kind": "file", "operation": "createFile", "file": {"path": "rel"}}, "operation.file.path: must be an absolute path"),
        ({"kind": "file", "operation": "createFile", "file": {"path": "/x", "mount": "tmpfs"}}, "operation.file.mount: must be one of root, volume, file"),
        ({"kind": "file", "operation": "createFile", "file": {"path": 1}}, "operation.file.path: must be a string, not a number"),
        ({"kind": "process", "operation": "exec", "file": {"path": "/x"}}, "operation.file: not allowed in a process operation"),
        ({"kind": "process", "operation": "exec", "colour": 1}, "operation.colour: unknown field"),
        ({"kind": "process", "operation": "exec", "container": {}}, "operation.container.image: required field is missing"),
        ({"kind": "process", "operation": "exec", "container": {"image": "a//b"}}, "operation.container.image: empty component"),
        ({"kind": "process", "operation": "exec", "container": "nginx"}, "operation.container: must be an object, not a string"),
        ({"kind": "process", "operation": "exec", "orchestrator": {"resource": {"labels": {"a": 1}}}}, "operation.orchestrator.resource.labels.a: must be a string"),
        ({"kind": "process", "operation": "exec", "orchestrator": {"resource": {"labels": []}}}, "operation.orchestrator.resource.labels: must be an object"),
        ({"kind": "process", "operation": "exec", "process": {"user": {"id": True}}}, "operation.process.user.id: must be a string or an integer"),
        ({"kind": "process", "operation": "exec", "process": {"session_leader": {"interactive": "yes"}}}, "operation.process.session_leader.interactive: must be true or false"),
        ({"kind": "process", "operation": "exec", "process": {"executable": "bash"}}, "operation.process.executable: must be an absolute path"),
    ],
)
def test_operation_errors(obj: Any, message: str) -> None:
    with pytest.raises(OperationError) as caught:
        parse_operation(obj)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_operation_list_errors_name_the_index() -> None:
    good = file_op()
    with pytest.raises(OperationError, match=r"^operation\[1\]\.file\.mount: must be one of root, volume, file$"):
        parse_operations([good, file_op(mount="nfs")])
    assert len(parse_operations([good, good])) == 2
    assert len(parse_operations(good)) == 1


def test_contract_example_operation() -> None:
    example = json.loads(
        """{"kind": "file", "operation": "createExecutable", "file": {"path": "/usr/bin/evil", "mount": "root"},
        "container": {"image": "docker.io/library/nginx:latest"},
        "orchestrator": {"type": "kubernetes", "cluster": {"id": "c-1", "name": "staging"}, "namespace": "default",
          "resource": {"name": "nginx-pod-1", "labels": {"app": "nginx", "owner": "drohan"}}},
        "process": {"executable": "/bin/sh", "user": {"id": "0", "name": "root"},
          "session_leader": {"executable": "/bin/bash", "interactive": true}}}"""
    )
    op = parse_operation(example)
    assert (op.container.name, op.container.tag, op.container.full) == ("nginx", "latest", IMAGE)
    assert op.orchestrator.label_map == {"app": "nginx", "owner": "drohan"}
    assert op.process.name == "sh" and op.process.user_id == "0"
    assert op.file.mount == "root"


def test_mount_defaults_to_root() -> None:
    assert parse_operation({"kind": "file", "operation": "deleteFile", "file": {"path": "/x"}}).file.mount == "root"


def test_policies_survive_pickling_and_copying() -> None:
    import copy
    import pickle

    op = parse_operation(file_op("/usr/bin/x", orchestrator=K8S))
    policy = validate_policy_document(
        {"file": {"selectors": [{"name": "l", "orchestratorResourceLabel": ["app:ng*"]}], "responses": [{"match": ["l"], "actions": ["log"]}]}}
    ).policy
    for original in (D22_POLICY, policy):
        for clone in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original), copy.copy(original)):
            assert clone == original
            assert evaluate(clone, op) == evaluate(original, op)
    assert evaluate(policy, op).matched_selectors == ("l",)
    restored = pickle.loads(pickle.dumps(op))
    assert restored == op and restored.facts == op.facts and evaluate(D22_POLICY, restored) == evaluate(D22_POLICY, op)
