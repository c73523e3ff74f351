"""Policies built directly from the model (no YAML), shared by the compiler and VM tests."""

from __future__ import annotations

from reference_agent.policy.model import Policy, Response, Section, Selector


def file_policy(selectors: list[dict], responses: list[dict]) -> Policy:
    sels = tuple(
        Selector(kind="file", index=i, **{k: (frozenset(v) if k == "operations" else v) for k, v in s.items()})
        for i, s in enumerate(selectors)
    )
    resps = tuple(
        Response(index=i, match=tuple(r["match"]), exclude=tuple(r.get("exclude", ())),
                 actions=frozenset(r["actions"]), kind="file")
        for i, r in enumerate(responses)
    )
    return Policy(file=Section(kind="file", selectors=sels, responses=resps))


# The differential policy: each selector exercises one kernel mechanism.
DIFFERENTIAL = file_policy(
    [
        {"name": "etc-writes", "operations": ["createFile", "modifyFile", "createExecutable", "modifyExecutable"],
         "targetFilePath": ("/etc/**",)},
        {"name": "bin-direct", "targetFilePath": ("/usr/bin/*",)},
        {"name": "secrets", "targetFilePath": ("/var/**/secrets/*",)},
        {"name": "redis-etc", "containerImageName": ("redis",), "targetFilePath": ("/etc/**",)},
        {"name": "root-only", "ignoreVolumeMounts": True, "targetFilePath": ("/data/**", "/etc/hosts")},
        {"name": "not-file-mounts", "ignoreVolumeFiles": True, "targetFilePath": ("/data/**", "/etc/hosts")},
        {"name": "deletes", "operations": ["deleteFile"]},
        {"name": "new-executables", "operations": ["createExecutable"]},
        {"name": "etc-tmp", "targetFilePath": ("/etc/tmp*",)},
        {"name": "nginx-sbin", "fullContainerImageName": ("docker.io/library/nginx:*",),
         "targetFilePath": ("/usr/sbin*",)},
    ],
    [
        {"match": ["etc-writes"], "exclude": ["etc-tmp"], "actions": ["block", "alert"]},
        {"match": ["bin-direct", "secrets"], "actions": ["log"]},
        {"match": ["redis-etc"], "actions": ["block", "alert"]},
        {"match": ["root-only", "not-file-mounts"], "actions": ["alert"]},
        {"match": ["deletes"], "exclude": ["etc-writes"], "actions": ["log"]},
        {"match": ["new-executables"], "actions": ["block", "alert"]},
        {"match": ["nginx-sbin"], "actions": ["log"]},
    ],
)
