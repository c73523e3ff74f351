"""The policy validator's case tables: data, shared by the validator, schema and CLI tests.

An error case is a policy text with `#!` at the end of the line the diagnostic must point at,
the expected code and YAML path, and the decision ids it pins. A valid case must validate
without errors.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

MARK = "#!"


@dataclass(frozen=True)
class ErrorCase:
    id: str
    code: str
    path: str
    text: str
    decisions: tuple[str, ...] = ()
    schema: bool = True  # the JSON Schema can express this error too

    @property
    def line(self) -> int:
        lines = [i for i, text in enumerate(self.text.splitlines(), 1) if text.rstrip().endswith(MARK)]
        assert len(lines) == 1, f"{self.id}: mark exactly one line with {MARK}"
        return lines[0]


@dataclass(frozen=True)
class ValidCase:
    id: str
    text: str
    decisions: tuple[str, ...] = ()


def _t(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def E(id: str, code: str, path: str, text: str, *decisions: str, schema: bool = True) -> ErrorCase:
    return ErrorCase(id, code, path, _t(text), tuple(decisions), schema)


def V(id: str, text: str, *decisions: str) -> ValidCase:
    return ValidCase(id, _t(text), tuple(decisions))


def _many(kind: str, selectors: int, responses: int) -> str:
    """A section with the given numbers of selectors and responses; marks the 65th item."""
    lines = [f"{kind}:", "  selectors:"]
    condition = "targetFilePath: [/etc/x]" if kind == "file" else "processName: [sh]"
    for i in range(selectors):
        mark = f"  {MARK}" if i == 64 else ""
        lines.append(f"    - {{name: s{i}, {condition}}}{mark}")
    lines.append("  responses:")
    for i in range(responses):
        mark = f"  {MARK}" if i == 64 and selectors <= 64 else ""
        lines.append(f"    - {{match: [s0], actions: [log]}}{mark}")
    return "\n".join(lines) + "\n"


FILE_OK_RESPONSES = """
  responses:
    - match: [a]
      actions: [log]
"""

ERROR_CASES: list[ErrorCase] = [
    # --- yaml-syntax -------------------------------------------------------------------
    E("yaml-bad-indentation", "yaml-syntax", "", """
        file:
          selectors:
            - name: a
              targetFilePath: [/x]
           responses:  #!
            - {match: [a], actions: [log]}
        """, schema=False),
    E("yaml-tab-indentation", "yaml-syntax", "", "file:\n\tselectors: []  #!\n", schema=False),
    E("yaml-duplicate-key", "yaml-syntax", "file.selectors[0].name", """
        file:
          selectors:
            - name: a
              name: b  #!
              targetFilePath: [/x]
          responses:
            - {match: [a], actions: [log]}
        """, "D1", schema=False),
    E("yaml-seed-response-one-line", "yaml-syntax", "", """
        process:
          selectors:
            - {name: allProcesses, operation: [fork, exec]}
            - {name: excludeSystemDServices, processExecutable: [/usr/lib/systemd/**]}
          responses:
            - match: [allProcesses] exclude: [excludeSystemDServices]  #!
              actions: [log]
        """, schema=False),
    E("yaml-unknown-tag", "yaml-syntax", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath: [!!python/name:os.system x]  #!
          responses:
            - {match: [a], actions: [log]}
        """, schema=False),
    E("yaml-tag-on-a-mapping", "yaml-syntax", "file", """
        file: !!python/object/apply:os.system  #!
          selectors:
            - {name: a, operation: [createFile]}
          responses:
            - {match: [a], actions: [log]}
        """, schema=False),
    E("yaml-local-tag-on-a-sequence", "yaml-syntax", "file.responses[0].actions", """
        file:
          selectors:
            - {name: a, operation: [createFile]}
          responses:
            - match: [a]
              actions: !mine [log]  #!
        """, schema=False),
    E("yaml-int-tag-on-a-word", "yaml-syntax", "file.responses[0].actions[0]", """
        file:
          selectors:
            - {name: a, operation: [createFile]}
          responses:
            - match: [a]
              actions: [!!int log]  #!
        """, schema=False),
    E("yaml-recursive-alias", "yaml-syntax", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath: &p [*p]  #!
          responses:
            - {match: [a], actions: [log]}
        """, schema=False),
    E("yaml-huge-integer", "yaml-syntax", "file.selectors[0].name", """
        file:
          selectors:
            - name: 123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890  #!
              operation: [createFile]
          responses:
            - {match: [a], actions: [log]}
        """, schema=False),
    # --- empty-policy (D1) -----------------------------------------------------------------
    E("empty-document", "empty-policy", "", "#!\n", "D1"),
    E("comments-only", "empty-policy", "", "# nothing here  #!\n", "D1"),
    E("empty-mapping", "empty-policy", "", "{}  #!\n", "D1"),
    E("null-document", "empty-policy", "", "~  #!\n", "D1"),
    # --- unknown-key (D1) --------------------------------------------------------------------
    E("unknown-top-level-key", "unknown-key", "network", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - {match: [a], actions: [log]}
        network: {}  #!
        """, "D1"),
    E("unknown-section-key", "unknown-key", "file.rules", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - {match: [a], actions: [log]}
          rules: []  #!
        """, "D1"),
    E("unknown-selector-key", "unknown-key", "file.selectors[0].targetPath", """
        file:
          selectors:
            - name: a
              targetFilePath: [/x]
              targetPath: [/y]  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D1"),
    E("unknown-response-key", "unknown-key", "file.responses[0].severity", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: [a]
              actions: [log]
              severity: high  #!
        """, "D1"),
    E("only-unknown-keys", "unknown-key", "policy", """
        policy:  #!
          file: {}
        """, "D1"),
    # --- missing-field -----------------------------------------------------------------------
    E("missing-selectors", "missing-field", "file", """
        file:  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D1"),
    E("missing-responses", "missing-field", "process", """
        process:  #!
          selectors:
            - {name: a, processName: [sh]}
        """, "D1"),
    E("missing-name", "missing-field", "file.selectors[0]", """
        file:
          selectors:
            - targetFilePath: [/x]  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D2"),
    E("missing-match", "missing-field", "file.responses[0]", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - actions: [log]  #!
        """, "D7"),
    E("missing-actions", "missing-field", "file.responses[0]", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: [a]  #!
        """, "D7"),
    # --- bad-type ----------------------------------------------------------------------------
    E("policy-is-a-list", "bad-type", "", """
        - file  #!
        """, "D1"),
    E("section-is-a-list", "bad-type", "file", """
        file: [a, b]  #!
        """, "D1"),
    E("section-is-null", "bad-type", "file", """
        file:  #!
        """, "D1"),
    E("selectors-is-a-mapping", "bad-type", "file.selectors", """
        file:
          selectors: {name: a}  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D1"),
    E("selector-is-a-string", "bad-type", "file.selectors[0]", """
        file:
          selectors:
            - a  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D1"),
    E("name-is-a-number", "bad-type", "file.selectors[0].name", """
        file:
          selectors:
            - name: 42  #!
              targetFilePath: [/x]
          responses:
            - {match: [a], actions: [log]}
        """, "D2"),
    E("boolean-condition-is-a-string", "bad-type", "file.selectors[0].ignoreVolumeMounts", """
        file:
          selectors:
            - name: a
              ignoreVolumeMounts: "true"  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("list-condition-is-a-string", "bad-type", "file.selectors[0].targetFilePath", """
        file:
          selectors:
            - name: a
              targetFilePath: /usr/bin/**  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("list-value-is-a-number", "bad-type", "file.selectors[0].containerImageTag[0]", """
        file:
          selectors:
            - name: a
              containerImageTag:
                - 1.21  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("list-value-is-empty", "bad-type", "file.selectors[0].containerImageName[0]", """
        file:
          selectors:
            - name: a
              containerImageName:
                - ""  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("user-id-is-negative", "bad-type", "process.selectors[0].processUserId[0]", """
        process:
          selectors:
            - name: a
              processUserId:
                - -1  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("user-id-is-a-boolean", "bad-type", "process.selectors[0].processUserId[0]", """
        process:
          selectors:
            - name: a
              processUserId:
                - true  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("match-is-a-string", "bad-type", "file.responses[0].match", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: a  #!
              actions: [log]
        """, "D7"),
    E("response-is-a-list", "bad-type", "file.responses[0]", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - [a]  #!
        """, "D7"),
    # --- empty-list ----------------------------------------------------------------------------
    E("selectors-empty", "empty-list", "file.selectors", """
        file:
          selectors: []  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D1"),
    E("responses-empty", "empty-list", "file.responses", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses: []  #!
        """, "D1"),
    E("condition-empty", "empty-list", "file.selectors[0].targetFilePath", """
        file:
          selectors:
            - name: a
              targetFilePath: []  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("match-empty", "empty-list", "file.responses[0].match", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: []  #!
              actions: [log]
        """, "D7"),
    E("actions-empty", "empty-list", "file.responses[0].actions", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: [a]
              actions: []  #!
        """, "D7"),
    # --- bad-name, duplicate-name (D2) ---------------------------------------------------------
    E("name-starts-with-dash", "bad-name", "file.selectors[0].name", """
        file:
          selectors:
            - name: -bad  #!
              targetFilePath: [/x]
          responses:
            - {match: [-bad], actions: [log]}
        """, "D2"),
    E("name-with-space", "bad-name", "file.selectors[0].name", """
        file:
          selectors:
            - name: two words  #!
              targetFilePath: [/x]
          responses:
            - {match: [two words], actions: [log]}
        """, "D2"),
    E("name-with-dot", "bad-name", "file.selectors[0].name", """
        file:
          selectors:
            - name: a.b  #!
              targetFilePath: [/x]
          responses:
            - {match: [a.b], actions: [log]}
        """, "D2"),
    E("name-empty", "bad-name", "file.selectors[0].name", """
        file:
          selectors:
            - name:  #!
              targetFilePath: [/x]
          responses:
            - {match: [a], actions: [log]}
        """, "D2"),
    E("duplicate-name-in-section", "duplicate-name", "file.selectors[1].name", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
            - {name: a, targetFilePath: [/y]}  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D2", schema=False),
    E("duplicate-name-across-sections", "duplicate-name", "process.selectors[0].name", """
        file:
          selectors:
            - {name: shared, targetFilePath: [/x]}
          responses:
            - {match: [shared], actions: [log]}
        process:
          selectors:
            - {name: shared, processName: [sh]}  #!
          responses:
            - {match: [shared], actions: [log]}
        """, "D2", schema=False),
    # --- no-condition (D3) -----------------------------------------------------------------------
    E("selector-with-name-only", "no-condition", "file.selectors[0]", """
        file:
          selectors:
            - name: a  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    # --- condition-not-allowed (D4) ----------------------------------------------------------------
    E("process-condition-in-file-selector", "condition-not-allowed", "file.selectors[0].processName", """
        file:
          selectors:
            - name: a
              processName: [sh]  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D4"),
    E("file-condition-in-process-selector", "condition-not-allowed", "process.selectors[0].targetFilePath", """
        process:
          selectors:
            - name: a
              targetFilePath: [/x]  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D4"),
    E("volume-flag-in-process-selector", "condition-not-allowed", "process.selectors[0].ignoreVolumeMounts", """
        process:
          selectors:
            - name: a
              processName: [sh]
              ignoreVolumeMounts: true  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D4"),
    E("session-leader-name-in-file-selector", "condition-not-allowed", "file.selectors[0].sessionLeaderName", """
        file:
          selectors:
            - name: a
              sessionLeaderName: [bash]  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D4", "D32"),
    E("session-flag-in-file-selector", "condition-not-allowed", "file.selectors[0].sessionLeaderInteractive", """
        file:
          selectors:
            - name: a
              sessionLeaderInteractive: true  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D4"),
    # --- unknown-operation (D5) --------------------------------------------------------------------
    E("unknown-file-operation", "unknown-operation", "file.selectors[0].operation[1]", """
        file:
          selectors:
            - name: a
              operation:
                - createFile
                - openFile  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D5"),
    E("process-operation-in-file-selector", "unknown-operation", "file.selectors[0].operation[0]", """
        file:
          selectors:
            - name: a
              operation:
                - exec  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D5"),
    E("file-operation-in-process-selector", "unknown-operation", "process.selectors[0].operation[0]", """
        process:
          selectors:
            - name: a
              operation:
                - createFile  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D5"),
    E("execMemFd-in-file-selector", "unknown-operation", "file.selectors[0].operation[1]", """
        file:
          selectors:
            - name: a
              operation:
                - createExecutable
                - execMemFd  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D5", "D32"),
    E("operation-case-matters", "unknown-operation", "process.selectors[0].operation[0]", """
        process:
          selectors:
            - name: a
              operation:
                - Exec  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D5"),
    # --- bad-orchestrator-type (D6) ----------------------------------------------------------------
    E("orchestrator-type-docker", "bad-orchestrator-type", "file.selectors[0].orchestratorType[0]", """
        file:
          selectors:
            - name: a
              orchestratorType:
                - docker  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D6"),
    # --- unknown-action, unknown-selector, cross-section-selector (D7) ---------------------------
    E("unknown-action", "unknown-action", "file.responses[0].actions[1]", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: [a]
              actions:
                - log
                - deny  #!
        """, "D7"),
    E("unknown-selector-in-match", "unknown-selector", "file.responses[0].match[1]", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match:
                - a
                - b  #!
              actions: [log]
        """, "D7", schema=False),
    E("unknown-selector-in-exclude", "unknown-selector", "file.responses[0].exclude[0]", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: [a]
              exclude:
                - nope  #!
              actions: [log]
        """, "D7", schema=False),
    E("process-selector-in-file-response", "cross-section-selector", "file.responses[0].match[0]", """
        file:
          selectors:
            - {name: f, targetFilePath: [/x]}
          responses:
            - match:
                - p  #!
              actions: [log]
        process:
          selectors:
            - {name: p, processName: [sh]}
          responses:
            - {match: [p], actions: [log]}
        """, "D7", schema=False),
    E("file-selector-in-process-exclude", "cross-section-selector", "process.responses[0].exclude[0]", """
        file:
          selectors:
            - {name: f, targetFilePath: [/x]}
          responses:
            - {match: [f], actions: [log]}
        process:
          selectors:
            - {name: p, processName: [sh]}
          responses:
            - match: [p]
              exclude:
                - f  #!
              actions: [log]
        """, "D7", schema=False),
    # --- block-requires-alert (D8) -------------------------------------------------------------
    E("block-without-alert", "block-requires-alert", "file.responses[0].actions[1]", """
        file:
          selectors:
            - {name: a, targetFilePath: [/x]}
          responses:
            - match: [a]
              actions:
                - log
                - block  #!
        """, "D8"),
    E("process-block-without-alert", "block-requires-alert", "process.responses[0].actions[0]", """
        process:
          selectors:
            - {name: a, processName: [nc]}
          responses:
            - match: [a]
              actions:
                - block  #!
        """, "D8", "D21"),
    # --- exclusive-conditions (D3, D9) -----------------------------------------------------------
    E("both-volume-flags", "exclusive-conditions", "file.selectors[0].ignoreVolumeFiles", """
        file:
          selectors:
            - name: a
              ignoreVolumeMounts: true
              ignoreVolumeFiles: true  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D3"),
    E("alias-and-canonical", "exclusive-conditions", "file.selectors[0].kubernetesNamespace", """
        file:
          selectors:
            - name: a
              orchestratorNamespace: [default]
              kubernetesNamespace: [prod]  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D9"),
    E("alias-first-then-canonical", "exclusive-conditions", "file.selectors[0].fullContainerImageName", """
        file:
          selectors:
            - name: a
              containerImageFullName: [docker.io/library/nginx:latest]
              fullContainerImageName: [docker.io/library/nginx:1.25]  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D9"),
    E("file-flag-beside-an-alias", "condition-not-allowed", "process.selectors[0].ignoreVolumeFiles", """
        process:
          selectors:
            - name: a
              kubernetesPodLabel: [app:web]
              ignoreVolumeFiles: true  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D4", "D9"),
    # --- bad-path-pattern (D11) ------------------------------------------------------------------
    E("relative-path", "bad-path-pattern", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath:
                - usr/bin/*  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    E("relative-executable", "bad-path-pattern", "process.selectors[0].processExecutable[0]", """
        process:
          selectors:
            - name: a
              processExecutable:
                - bash  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    E("relative-session-leader", "bad-path-pattern", "process.selectors[0].sessionLeaderExecutable[0]", """
        process:
          selectors:
            - name: a
              sessionLeaderExecutable:
                - "*/bash"  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    E("double-slash", "bad-path-pattern", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath:
                - /usr//bin  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    E("dot-dot-segment", "bad-path-pattern", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath:
                - /usr/../etc/*  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    E("trailing-slash", "bad-path-pattern", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath:
                - /etc/  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    E("triple-star", "bad-path-pattern", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath:
                - /etc/***  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    E("empty-path", "bad-path-pattern", "file.selectors[0].targetFilePath[0]", """
        file:
          selectors:
            - name: a
              targetFilePath:
                - ""  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D11"),
    # --- wildcard-not-allowed (D12) ----------------------------------------------------------------
    *[
        E(f"wildcard-in-{cond}", "wildcard-not-allowed", f"{kind}.selectors[0].{cond}[0]", f"""
            {kind}:
              selectors:
                - name: a
                  {cond}:
                    - "{value}"  {MARK}
              responses:
                - {{match: [a], actions: [log]}}
            """, "D12")
        for kind, cond, value in [
            ("file", "orchestratorClusterId", "c-*"),
            ("file", "orchestratorClusterName", "stag*"),
            ("file", "orchestratorType", "kube*"),
            ("process", "processName", "ba*"),
            ("process", "sessionLeaderName", "*sh"),
            ("process", "processUserName", "*"),
            ("process", "processUserId", "10*"),
            ("process", "kubernetesClusterId", "*"),
        ]
    ],
    E("wildcard-in-label-key", "wildcard-not-allowed", "file.selectors[0].orchestratorResourceLabel[0]", """
        file:
          selectors:
            - name: a
              orchestratorResourceLabel:
                - "app*:web"  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D12", "D14"),
    # --- bad-label (D14) ---------------------------------------------------------------------------
    E("label-without-colon", "bad-label", "file.selectors[0].orchestratorResourceLabel[1]", """
        file:
          selectors:
            - name: a
              orchestratorResourceLabel:
                - owner:drohan
                - environment  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D14"),
    E("label-empty-key", "bad-label", "file.selectors[0].kubernetesPodLabel[0]", """
        file:
          selectors:
            - name: a
              kubernetesPodLabel:
                - ":web"  #!
          responses:
            - {match: [a], actions: [log]}
        """, "D14", "D9"),
    # --- too-many, too-long (D26) --------------------------------------------------------------------
    ErrorCase("too-many-selectors", "too-many", "file.selectors[64]", _many("file", 65, 1), ("D26",)),
    ErrorCase("too-many-responses", "too-many", "process.responses[64]", _many("process", 1, 65), ("D26",)),
    E("name-too-long", "too-long", "file.selectors[0].name", f"""
        file:
          selectors:
            - name: {"n" * 129}  {MARK}
              targetFilePath: [/x]
          responses:
            - {{match: [a], actions: [log]}}
        """, "D2", "D26"),
    E("path-too-long", "too-long", "file.selectors[0].targetFilePath[0]", f"""
        file:
          selectors:
            - name: a
              targetFilePath:
                - /{"p" * 255}  {MARK}
          responses:
            - {{match: [a], actions: [log]}}
        """, "D26"),
    E("path-too-long-in-bytes", "too-long", "process.selectors[0].processExecutable[0]", f"""
        process:
          selectors:
            - name: a
              processExecutable:
                - /{"é" * 128}  {MARK}
          responses:
            - {{match: [a], actions: [log]}}
        """, "D26", schema=False),
    E("string-too-long", "too-long", "file.selectors[0].containerImageName[0]", f"""
        file:
          selectors:
            - name: a
              containerImageName:
                - {"i" * 512}  {MARK}
          responses:
            - {{match: [a], actions: [log]}}
        """, "D26"),
]

VALID_CASES: list[ValidCase] = [
    V("seed-policy-example", """
        file:
          selectors:
            - name: exampleFile
              operation: [createFile, modifyFile]
          responses:
            - match: [exampleFile]
              actions: [block, alert]
        process:
          selectors:
            - name: exampleProcess
              operation: [fork, exec]
          responses:
            - match: [exampleProcess]
              actions: [log]
        """, "D1", "D5", "D8"),
    V("seed-selector-example", """
        file:
          selectors:
            - name: exampleFileSelector
              operation: [createExecutable, modifyExecutable]
              containerImageName: [nginx]
              containerImageTag: [latest]
              targetFilePath: [/usr/bin/**]
              orchestratorClusterId: [cluster1]
              orchestratorClusterName: [stagingCluster]
              orchestratorNamespace: [default]
              orchestratorResourceLabel: ['production:*']
              orchestratorResourceName: ['nginx-pod-*']
              orchestratorType: [kubernetes]
              ignoreVolumeMounts: true
          responses:
            - match: [exampleFileSelector]
              actions: [alert]
        """, "D3", "D10"),
    V("seed-selector-example-verbatim-quotes", """
        file:
          selectors:
            - name: exampleFileSelector
              operation: [createExecutable, modifyExecutable]
              containerImageName: [nginx]
              containerImageTag: [latest]
              targetFilePath: [/usr/bin/**]
              orchestratorClusterId: [cluster1]
              orchestratorClusterName: [stagingCluster]
              orchestratorNamespace: [default]
              orchestratorResourceLabel: [‘production:*’]
              orchestratorResourceName: [‘nginx-pod-*’]
              orchestratorType: [kubernetes]
              ignoreVolumeMounts: true
          responses:
            - match: [exampleFileSelector]
              actions: [alert]
        """, "D3"),
    V("seed-label-example", """
        file:
          selectors:
            - name: labelled
              operation: [createExecutable]
              orchestratorResourceLabel: [environment:*, owner:drohan]
          responses:
            - match: [labelled]
              actions: [alert]
        """, "D14"),
    V("seed-path-example", """
        file:
          selectors:
            - name: paths
              targetFilePath: [/usr/bin/echo, /usr/sbin*, /usr/local/**]
          responses:
            - match: [paths]
              actions: [log]
        """, "D11"),
    V("seed-response-example-corrected", """
        process:
          selectors:
            - name: allProcesses
              operation: [fork, exec]
            - name: excludeSystemDServices
              processExecutable: [/usr/lib/systemd/**]
            - name: nefariousActivity
              processName: [nc, ncat]
          responses:
            - match: [allProcesses]
              exclude: [excludeSystemDServices]
              actions: [log]
            - match: [nefariousActivity]
              actions: [alert, block]
        """, "D7", "D21", "D22"),
    V("every-process-condition", """
        process:
          selectors:
            - name: shells
              operation: [exec]
              processExecutable: [/bin/*sh, /usr/**/bash]
              processName: [bash, sh]
              processUserName: [root]
              processUserId: [0, "1000"]
              sessionLeaderInteractive: true
              sessionLeaderExecutable: [/bin/bash]
              containerImageName: [elastic-a*]
              containerImageTag: ["8.*"]
              fullContainerImageName: [docker.elastic.co/*]
          responses:
            - match: [shells]
              actions: [log, alert]
        """, "D3", "D16"),
    V("kibana-export", """
        version: "8.14.0"
        file:
          selectors:
            - name: executableChanges
              operation: [createExecutable, modifyExecutable]
          responses:
            - match: [executableChanges]
              actions: [alert]
        process:
          selectors:
            - name: fromMemory
              operation: [execMemFd]
            - name: shellSessions
              operation: [fork, exec]
              sessionLeaderName: [bash, sh]
          responses:
            - match: [fromMemory]
              actions: [alert, block]
            - match: [shellSessions]
              actions: [log]
        """, "D32"),
    V("aliases", """
        file:
          selectors:
            - name: a
              kubernetesClusterId: [c-1]
              kubernetesClusterName: [staging]
              kubernetesNamespace: [prod-*]
              kubernetesPodName: [web-*]
              kubernetesPodLabel: [app.kubernetes.io/name:web, "tier:"]
              containerImageFullName: [docker.io/library/nginx:*]
              ignoreVolumeFiles: false
          responses:
            - match: [a]
              actions: [log]
        """, "D9"),
    V("volume-flags-alone", """
        file:
          selectors:
            - {name: a, ignoreVolumeMounts: false}
            - {name: b, ignoreVolumeFiles: true, targetFilePath: [/etc/**]}
          responses:
            - {match: [a, b], exclude: [], actions: [log]}
        """, "D3", "D19"),
    V("name-shapes", f"""
        file:
          selectors:
            - {{name: 0leadingDigit, targetFilePath: [/x]}}
            - {{name: with_under-and-dash, targetFilePath: [/x]}}
            - {{name: {"n" * 128}, targetFilePath: [/x]}}
          responses:
            - {{match: [0leadingDigit, with_under-and-dash, {"n" * 128}], actions: [log]}}
        """, "D2", "D26"),
    V("limits-exactly", _many("file", 64, 64).replace(MARK, ""), "D26"),
    V("long-values-at-the-limit", f"""
        file:
          selectors:
            - name: a
              targetFilePath: [/{"p" * 254}]
              containerImageName: [{"i" * 511}]
          responses:
            - {{match: [a], actions: [log]}}
        """, "D26"),
    V("glob-syntax-is-literal", """
        file:
          selectors:
            - name: a
              targetFilePath: ["/tmp/a?b[1]{x,y}", /var/**/secrets/*, /**]
          responses:
            - {match: [a], actions: [alert]}
        """, "D11"),
    V("modeline-comment", """
        # yaml-language-server: $schema=../reference_agent/policy/policy.schema.json
        process:
          selectors:
            - {name: p, operation: [fork]}
          responses:
            - {match: [p], actions: [log]}
        """),
]

# D27: valid policies that get a `broad-block` warning at the given path.
WARNING_CASES: list[tuple[str, str, str]] = [
    (
        "block-without-path",
        "file.responses[0].match[0]",
        _t("""
            file:
              selectors:
                - {name: everything, operation: [modifyFile]}
              responses:
                - {match: [everything], actions: [alert, block]}
            """),
    ),
    (
        "block-root-globstar",
        "file.responses[0].match[0]",
        _t("""
            file:
              selectors:
                - {name: all, targetFilePath: [/**]}
              responses:
                - {match: [all], actions: [alert, block]}
            """),
    ),
    (
        "block-root-globstar-exec",
        "process.responses[0].match[0]",
        _t("""
            process:
              selectors:
                - {name: all, processExecutable: ["/**/sh"]}
              responses:
                - {match: [all], actions: [alert, block]}
            """),
    ),
]

# Blocking policies that must NOT warn.
NO_WARNING_CASES: list[tuple[str, str]] = [
    (
        "block-with-path",
        _t("""
            file:
              selectors:
                - {name: bins, targetFilePath: [/usr/bin/**]}
              responses:
                - {match: [bins], actions: [alert, block]}
            """),
    ),
    (
        "block-narrowed-by-exclude-path",
        _t("""
            file:
              selectors:
                - {name: all, operation: [createExecutable]}
                - {name: tmp, targetFilePath: [/tmp/**]}
              responses:
                - {match: [all], exclude: [tmp], actions: [alert, block]}
            """),
    ),
    (
        "alert-only-is-not-a-block",
        _t("""
            file:
              selectors:
                - {name: all, targetFilePath: [/**]}
              responses:
                - {match: [all], actions: [alert]}
            """),
    ),
]
