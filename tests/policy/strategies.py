"""Hypothesis strategies: arbitrary documents, valid policies and operations."""

from __future__ import annotations

from hypothesis import strategies as st

from reference_agent.policy import ALIASES, CONDITION_NAMES

KEYS = ["file", "process", "selectors", "responses", "name", "match", "exclude", "actions", *CONDITION_NAMES, *ALIASES, "bogus"]
WORDS = ["a", "b", "s0", "s1", "log", "alert", "block", "exec", "fork", "createFile", "deleteFile", "/usr/bin/*", "/**", "rel", "app:web", "x*", "kubernetes", "", "*"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=2000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
# Arbitrary documents biased towards the policy vocabulary, so that deep rules get exercised.
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5), st.integers(0, 3)), children, max_size=5),
    ),
    max_leaves=30,
)

# --- valid policies ------------------------------------------------------------------------------

PATHS = ["/usr/bin/*", "/usr/**", "/etc/passwd", "/tmp/**", "/var/**/secrets/*", "/usr/sbin*", "/bin/*sh"]
IMAGES = ["nginx", "ngi*", "busybox", "*"]
TAGS = ["latest", "1.*"]
NAMESPACES = ["default", "prod-*"]
LABELS = ["app:*", "app:web", "tier:", "owner:dro*"]
FILE_OPS = ["createExecutable", "modifyExecutable", "createFile", "modifyFile", "deleteFile"]
PROC_OPS = ["fork", "exec", "execMemFd"]


def _sublist(values: list, min_size: int = 1) -> st.SearchStrategy:
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=3, unique=True)


@st.composite
def selector_body(draw, kind: str) -> dict:
    options: dict[str, st.SearchStrategy] = {
        "containerImageName": _sublist(IMAGES),
        "containerImageTag": _sublist(TAGS),
        "orchestratorNamespace": _sublist(NAMESPACES),
        "orchestratorResourceLabel": _sublist(LABELS),
        "orchestratorClusterId": _sublist(["c-1", "c-2"]),
    }
    if kind == "file":
        options |= {
            "operation": _sublist(FILE_OPS),
            "targetFilePath": _sublist(PATHS),
            "ignoreVolumeMounts": st.booleans(),
        }
    else:
        options |= {
            "operation": _sublist(PROC_OPS),
            "processExecutable": _sublist(PATHS),
            "processName": _sublist(["sh", "bash", "curl"]),
            "processUserId": _sublist([0, "0", 1000]),
            "sessionLeaderInteractive": st.booleans(),
            "sessionLeaderName": _sublist(["sh", "bash"]),
        }
    names = draw(st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=3, unique=True))
    return {name: draw(options[name]) for name in names}


@st.composite
def valid_policies(draw) -> dict:
    doc: dict = {}
    kinds = draw(st.sampled_from([["file"], ["process"], ["file", "process"]]))
    for kind in kinds:
        count = draw(st.integers(1, 5))
        names = [f"{kind[0]}{i}" for i in range(count)]
        selectors = [{"name": n, **draw(selector_body(kind))} for n in names]
        responses = []
        for _ in range(draw(st.integers(1, 4))):
            response: dict = {"match": draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))}
            if draw(st.booleans()):
                response["exclude"] = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
            actions = draw(_sublist(["log", "alert", "block"]))
            if "block" in actions and "alert" not in actions:
                actions.append("alert")
            response["actions"] = actions
            responses.append(response)
        doc[kind] = {"selectors": selectors, "responses": responses}
    return doc


@st.composite
def operations(draw) -> dict:
    kind = draw(st.sampled_from(["file", "process"]))
    op: dict = {"kind": kind}
    if draw(st.integers(0, 9)):
        op["container"] = {"image": draw(st.sampled_from(["nginx", "nginx:1.25", "busybox", "ghcr.io/x/nginx:latest"]))}
    if draw(st.booleans()):
        op["orchestrator"] = {
            "namespace": draw(st.sampled_from(["default", "prod-web", "kube-system"])),
            "cluster": {"id": draw(st.sampled_from(["c-1", "c-2"]))},
            "resource": {"labels": draw(st.dictionaries(st.sampled_from(["app", "tier", "owner"]), st.sampled_from(["", "web", "drohan"]), max_size=3))},
        }
    path = draw(st.sampled_from(["/usr/bin/ls", "/usr/lib/x", "/etc/passwd", "/tmp/a/b", "/var/secrets/k", "/var/run/secrets/k", "/usr/sbin2", "/bin/bash"]))
    if kind == "file":
        op["operation"] = draw(st.sampled_from(FILE_OPS))
        op["file"] = {"path": path, "mount": draw(st.sampled_from(["root", "volume", "file"]))}
    else:
        op["operation"] = draw(st.sampled_from(PROC_OPS))
        op["process"] = {
            "executable": path,
            "user": {"id": draw(st.sampled_from(["0", "1000", "33"]))},
            "session_leader": {"interactive": draw(st.booleans()),
                               "executable": draw(st.sampled_from(["/bin/sh", "/usr/bin/bash"]))},
        }
    return op
