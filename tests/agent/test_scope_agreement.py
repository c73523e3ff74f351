"""Which selectors apply to a container: the agent's masks (metadata/scoping.py), the kernel
compilers' masks (CompiledFilePolicy/CompiledProcessPolicy.container_mask) and the reference
evaluator on a real operation of that container agree, over generated container metadata and
selectors (D12-D15; an unknown image meets no image condition, not even `*`)."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.process_compiler import compile_process_section
from reference_agent.metadata.containers import ContainerInfo, PodInfo, parse_image_reference
from reference_agent.metadata.scoping import container_selectors, policy_facts
from reference_agent.policy import Policy, load_policy_text, parse_operation, selector_matches

IMAGE_CONDITIONS = ("containerImageName", "containerImageTag", "fullContainerImageName", "containerImageFullName")
VALUES = {
    "containerImageName": ["nginx", "ngi*", "*", "web"],
    "containerImageTag": ["latest", "1.*", "*"],
    "fullContainerImageName": ["docker.io/library/nginx:latest", "registry.local/*", "*"],
    "containerImageFullName": ["docker.io/library/busybox:1.36", "*"],  # D9 alias
    "orchestratorNamespace": ["prod-*", "default", "*"],
    "kubernetesNamespace": ["default", "*"],  # D9 alias
    "orchestratorResourceName": ["web-*", "*"],
    "orchestratorResourceLabel": ["app:web", "tier:", "tier:*", "app:*"],
    "orchestratorClusterId": ["c-1"],
    "orchestratorClusterName": ["staging"],
    "orchestratorType": ["kubernetes"],
}
# One per-operation condition per section, with an operation that meets it: the reduction to
# container conditions must drop it, and the evaluator's answer on that operation is the oracle.
PER_OPERATION = {"file": ("targetFilePath", ["/usr/bin/**"]), "process": ("processName", ["sh"])}
FILE_OP = {"kind": "file", "operation": "createFile", "file": {"path": "/usr/bin/x"}}
PROCESS_OP = {"kind": "process", "operation": "exec", "process": {"executable": "/bin/sh"}}

REFERENCES = ["nginx", "nginx:1.25", "busybox:1.36", "registry.local/web:2", "ghcr.io/org/nginx@sha256:" + "a" * 64]


def _canonical(name: str) -> str:
    return {"containerImageFullName": "fullContainerImageName", "kubernetesNamespace": "orchestratorNamespace"}.get(
        name, name)


@st.composite
def selector_bodies(draw, kind: str) -> dict:
    names = draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=3, unique_by=_canonical))
    body = {n: draw(st.lists(st.sampled_from(VALUES[n]), min_size=1, max_size=2, unique=True)) for n in names}
    if draw(st.booleans()):
        condition, values = PER_OPERATION[kind]
        body[condition] = values
    return body


def _yaml_section(kind: str, bodies: list[dict]) -> str:
    lines = [f"{kind}:", "  selectors:"]
    names = []
    for i, body in enumerate(bodies):
        names.append(f"{kind[0]}{i}")
        lines.append(f"    - name: {names[-1]}")
        lines.extend(f"      {k}: {v!r}" for k, v in body.items())
    lines += ["  responses:", f"    - match: [{', '.join(names)}]", "      actions: [log]"]
    return "\n".join(lines)


@st.composite
def policies(draw) -> Policy:
    text = "\n".join(_yaml_section(kind, draw(st.lists(selector_bodies(kind), min_size=1, max_size=6)))
                     for kind in ("file", "process"))
    result = load_policy_text(text, "generated.yaml")
    assert result.valid, (text, result.errors)
    return result.policy


pods = st.one_of(
    st.none(),
    st.builds(PodInfo, name=st.sampled_from([None, "web-1", "db-0"]), namespace=st.sampled_from([None, "default", "prod-eu"]),
              uid=st.just("u"), labels=st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["", "web", "db"]),
                                                       max_size=2)),
)
containers = st.builds(
    ContainerInfo, id=st.just("c"), name=st.just("c"), pod=pods,
    image=st.one_of(st.none(), st.sampled_from(REFERENCES).map(parse_image_reference)),
)
clusters = st.sampled_from([None, "c-1", "c-2"])
cluster_names = st.sampled_from([None, "staging"])


def _kernel_answer(policy: Policy, info: ContainerInfo, cluster_id, cluster_name) -> frozenset[str]:
    facts = policy_facts(info, cluster_id, cluster_name)
    names: set[str] = set()
    for compiled in (compile_file_section(policy), compile_process_section(policy)):
        names.update(compiled.selector_names(compiled.container_mask(*facts)))
    return frozenset(names)


def _oracle(policy: Policy, info: ContainerInfo, cluster_id, cluster_name) -> frozenset[str]:
    """The evaluator on an operation of this container, written in the contract's JSON shape
    from the metadata. An image the runtime cannot name has no JSON form: such a container
    meets a selector exactly when the selector has no image condition and meets the rest, for
    which any image will do."""
    orchestrator = None
    if info.pod is not None:
        orchestrator = {"type": "kubernetes", "cluster": {"id": cluster_id, "name": cluster_name},
                        "namespace": info.pod.namespace,
                        "resource": {"name": info.pod.name, "labels": dict(info.pod.labels)}}
    image = info.image.reference if info.image is not None else "any-image"
    names = set()
    for section in policy.sections:
        shape = dict(FILE_OP if section.kind == "file" else PROCESS_OP, container={"image": image},
                     orchestrator=orchestrator)
        operation = parse_operation(shape)
        for selector in section.selectors:
            if info.image is None and any(getattr(selector, _canonical(c)) for c in IMAGE_CONDITIONS):
                continue
            if selector_matches(selector, operation):
                names.add(selector.name)
    return frozenset(names)


UNKNOWN = ContainerInfo(id="u", name="u", image=None, pod=None)
UNKNOWN_POD = ContainerInfo(id="p", name="p", image=None, pod=PodInfo(name=None, namespace=None, uid=None))


def _policy(text: str) -> Policy:
    result = load_policy_text(text, "p.yaml")
    assert result.valid, result.errors
    return result.policy


STAR_IMAGE = _policy(_yaml_section("file", [{"containerImageName": ["*"]}, {"orchestratorNamespace": ["*"]},
                                            {"targetFilePath": ["/**"]}])
                     + "\n" + _yaml_section("process", [{"containerImageTag": ["*"]}]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), containers, clusters, cluster_names)
@example(STAR_IMAGE, UNKNOWN, None, None)
@example(STAR_IMAGE, UNKNOWN_POD, "c-1", None)
def test_agent_kernel_masks_and_evaluator_agree(policy, info, cluster_id, cluster_name):
    agent = container_selectors(policy, info, cluster_id, cluster_name)
    assert _kernel_answer(policy, info, cluster_id, cluster_name) == agent
    assert _oracle(policy, info, cluster_id, cluster_name) == agent


def test_an_unknown_image_meets_no_image_condition_not_even_a_star():
    assert container_selectors(STAR_IMAGE, UNKNOWN) == {"f2"}
    assert _kernel_answer(STAR_IMAGE, UNKNOWN, None, None) == {"f2"}
    # A pod the API has not described yet: its namespace is unknown too (D15's rule for facts).
    assert container_selectors(STAR_IMAGE, UNKNOWN_POD, "c-1") == {"f2"}
    known = ContainerInfo(id="n", name="n", image=parse_image_reference("nginx"), pod=None)
    assert _kernel_answer(STAR_IMAGE, known, None, None) == {"f0", "f2", "p0"}
