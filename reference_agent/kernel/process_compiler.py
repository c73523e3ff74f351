"""The policy → BPF-map compiler for the process section (bpf/process_hooks.bpf.c).

Per operation the kernel decides: operation bit (D5; an `exec` selector also holds the
execMemFd bit, D32), processExecutable / processName / sessionLeaderExecutable /
sessionLeaderName as path patterns (D11, D16, D32: a name `n` is the pattern `**/n` on the
executable, i.e. its basename), processUserId (a map uid -> selectors), processUserName (a map
(container, uid) -> selectors: names come from the container's own /etc/passwd, resolved here),
sessionLeaderInteractive (two masks), and the responses (D22). The static conditions (image,
orchestrator) are decided once per container by the agent's own rule (policy/scope.py), as
compiler.py does for files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reference_agent.kernel import abi
from reference_agent.kernel.compiler import (
    CompileError,
    add_patterns,
    compile_responses,
    path_tokens,
    pattern_entries,
    section_parts,
)
from reference_agent.policy import limits, scope
from reference_agent.policy.model import Policy, Selector, selects_operation
from reference_agent.policy.operation import Container, Orchestrator

_SETS = abi.PatternSet


@dataclass(frozen=True)
class CompiledProcessPolicy:
    names: tuple[str, ...]  # selector names by bit (= policy order)
    policy: abi.ProcessPolicy
    patterns: tuple[tuple[abi.PathPattern, ...], ...]  # per pattern set (abi.PatternSet)
    responses: tuple[abi.Response, ...]
    user_ids: Mapping[int, int]  # uid -> selectors whose processUserId lists it
    user_names: Mapping[str, int]  # user name -> selectors whose processUserName lists it
    static_selectors: tuple[Selector, ...]

    def container_mask(self, container: Container | None, orchestrator: Orchestrator | None = None) -> int:
        """Bit i set when selector i's image/orchestrator conditions hold (0 for the host, D15)."""
        return scope.container_mask(self.static_selectors, container, orchestrator)

    def user_name_masks(self, accounts: Mapping[int, str]) -> dict[int, int]:
        """uid -> processUserName selectors, for a container whose /etc/passwd is `accounts`."""
        out = {}
        for uid, name in accounts.items():
            mask = self.user_names.get(name, 0)
            if mask and 0 <= uid < 2**32:
                out[uid] = mask
        return out

    def selector_names(self, mask: int) -> tuple[str, ...]:
        return tuple(name for bit, name in enumerate(self.names) if mask >> bit & 1)


def _name_tokens(selector: Selector, field: str, name: str) -> list[bytes]:
    """D16: processName `n` = the executable's basename is `n` = the path matches `**/n`
    (sessionLeaderName likewise on the leader's executable, D32). A name with a `/` is no
    basename: it matches nothing (no pattern)."""
    if any(b in (0, 1, 2) for b in name.encode()):
        raise CompileError(f"selector {selector.name}: {field} {name!r} has a control byte 0x00-0x02")
    return limits.name_tokens(name, int(abi.Token.D4C_TOKEN_GLOBSTAR))


def compile_process_section(policy: Policy) -> CompiledProcessPolicy:
    """Compile the process section of a validated policy (an absent section compiles to nothing)."""
    selectors, responses = section_parts(policy, "process")
    pol = abi.ProcessPolicy()
    sets: list[dict[bytes, int]] = [{} for _ in range(abi.D4C_PATTERN_SETS)]
    user_ids: dict[int, int] = {}
    user_names: dict[str, int] = {}
    for bit, sel in enumerate(selectors):
        me = 1 << bit
        for op_name, op_bit in abi.PROCESS_OP_BITS.items():
            if selects_operation(sel.operations, op_name):  # D32: exec selectors hold memfd execs
                pol.op_selectors[op_bit.bit_length() - 1] |= me
        # Each pattern set: the condition that fills it and how one of its values becomes tokens.
        conditions = (
            (_SETS.D4C_SET_EXECUTABLE, "processExecutable", sel.processExecutable, path_tokens),
            (_SETS.D4C_SET_LEADER, "sessionLeaderExecutable", sel.sessionLeaderExecutable, path_tokens),
            (_SETS.D4C_SET_NAME, "processName", sel.processName, _name_tokens),
            (_SETS.D4C_SET_LEADER_NAME, "sessionLeaderName", sel.sessionLeaderName, _name_tokens),
        )
        for set_index, field, values, tokenize in conditions:
            if values:
                pol.set_selectors[set_index] |= me
            for value in values:
                add_patterns(sets[set_index], sel, field, value, tokenize(sel, field, value), me)
        if sel.processUserId:
            pol.user_id_selectors |= me
            for value in sel.processUserId:
                uid = limits.kernel_uid(value)
                if uid is not None:
                    user_ids[uid] = user_ids.get(uid, 0) | me
        if sel.processUserName:
            pol.user_name_selectors |= me
            for name in sel.processUserName:
                user_names[name] = user_names.get(name, 0) | me
        if sel.sessionLeaderInteractive is True:
            pol.interactive_true |= me
        elif sel.sessionLeaderInteractive is False:
            pol.interactive_false |= me
    if len(user_ids) > abi.D4C_MAX_USER_IDS:
        raise CompileError(f"{len(user_ids)} distinct processUserId values; the kernel holds at most "
                           f"{abi.D4C_MAX_USER_IDS}")
    for set_index, by_tokens in enumerate(sets):
        if len(by_tokens) > abi.D4C_MAX_PATTERNS:
            raise CompileError(f"{len(by_tokens)} distinct {_SETS(set_index).name} patterns; "
                               f"the kernel holds at most {abi.D4C_MAX_PATTERNS}")
        pol.n_patterns[set_index] = len(by_tokens)

    patterns = tuple(pattern_entries(by_tokens) for by_tokens in sets)
    compiled_responses = compile_responses(selectors, responses)
    pol.n_responses = len(compiled_responses)
    return CompiledProcessPolicy(
        names=tuple(sel.name for sel in selectors),
        policy=pol,
        patterns=patterns,
        responses=compiled_responses,
        user_ids=user_ids,
        user_names=user_names,
        static_selectors=scope.container_only_all(selectors),
    )
