"""The policy → BPF-map compiler for the file section (bpf/file_hooks.bpf.c).

What the kernel decides per operation (operation bit, mount class D19, path patterns D11,
responses D22) becomes map values (abi.FilePolicy, abi.PathPattern, abi.Response). What does
not change during a container's life (image and orchestrator conditions, D12-D15) is decided
here, once per container: `container_mask()` gives the bitmask of selectors whose static
conditions the container meets, by the agent's own rule (policy/scope.py), so the masks the
agent computes and the ones a compiled policy gives cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reference_agent.kernel import abi
from reference_agent.policy import limits, scope
from reference_agent.policy.model import Policy, Response, Section, Selector, selects_operation
from reference_agent.policy.operation import Container, Orchestrator

# A pattern with k `/**/` becomes 2**k kernel patterns; three is more than real policies use.
MAX_DOUBLE_SLASH_GLOBSTARS = limits.MAX_DOUBLE_SLASH_GLOBSTARS


class CompileError(ValueError):
    """The policy is valid but the kernel matcher cannot represent it; says which selector."""


@dataclass(frozen=True)
class CompiledFilePolicy:
    names: tuple[str, ...]  # selector names by bit (= policy order)
    policy: abi.FilePolicy
    patterns: tuple[abi.PathPattern, ...]
    responses: tuple[abi.Response, ...]
    static_selectors: tuple[Selector, ...]  # the selectors with only their static conditions

    def container_mask(self, container: Container | None, orchestrator: Orchestrator | None = None) -> int:
        """Bit i set when selector i's image/orchestrator conditions hold for this container.
        0 for a host process (D15)."""
        return scope.container_mask(self.static_selectors, container, orchestrator)

    def selector_names(self, mask: int) -> tuple[str, ...]:
        return tuple(name for bit, name in enumerate(self.names) if mask >> bit & 1)


def pattern_tokens(pattern: str) -> list[bytes]:
    """A D11 path pattern as kernel token strings (D4C_TOKEN_STAR for `*`, D4C_TOKEN_GLOBSTAR
    for `**`; a `/**/` becomes two patterns): policy.limits.expand with the ABI's tokens, the
    expansion the validator counts."""
    return limits.expand(pattern, int(abi.Token.D4C_TOKEN_STAR), int(abi.Token.D4C_TOKEN_GLOBSTAR))


def glob_match(tokens: bytes, path: bytes) -> bool:
    """The kernel's matcher (match_step in file_hooks.bpf.c), step for step: an iterative glob
    with two backtrack points, the last `*` (never extended over `/`) and the last `**`."""
    star, globstar, slash = int(abi.Token.D4C_TOKEN_STAR), int(abi.Token.D4C_TOKEN_GLOBSTAR), ord("/")
    p = s = 0
    sp = ss = dp = ds = -1
    while s < len(path):
        tok = tokens[p] if p < len(tokens) else 0
        if tok == globstar:
            dp, ds, sp = p, s, -1
            p += 1
        elif tok == star:
            sp, ss = p, s
            p += 1
        elif p < len(tokens) and tok == path[s]:
            p += 1
            s += 1
        elif sp >= 0 and path[ss] != slash:
            ss += 1
            s, p = ss, sp + 1
        elif dp >= 0:
            ds += 1
            s, p, sp = ds, dp + 1, -1
        else:
            return False
    while p < len(tokens) and tokens[p] in (star, globstar):
        p += 1
    return p == len(tokens)


def section_parts(policy: Policy, kind: str) -> tuple[tuple[Selector, ...], tuple[Response, ...]]:
    """The selectors and responses of one section (none when it is absent), within D26."""
    section: Section | None = policy.section(kind)
    selectors = section.selectors if section else ()
    responses = section.responses if section else ()
    if len(selectors) > abi.D4C_MAX_SELECTORS or len(responses) > abi.D4C_MAX_RESPONSES:
        raise CompileError(f"more than {abi.D4C_MAX_SELECTORS} selectors or responses (D26)")
    return selectors, responses


def path_tokens(selector: Selector, field: str, pattern: str) -> list[bytes]:
    """A path pattern of `field` as kernel patterns, or why the kernel cannot hold it."""
    if limits.double_slash_globstars(pattern) > MAX_DOUBLE_SLASH_GLOBSTARS:
        raise CompileError(f"selector {selector.name}: {field} {pattern!r} has more than "
                           f"{MAX_DOUBLE_SLASH_GLOBSTARS} '/**/' (the kernel matcher expands each into two patterns)")
    if any(b in (0, 1, 2) for b in pattern.encode()):
        raise CompileError(f"selector {selector.name}: {field} {pattern!r} has a control byte 0x00-0x02")
    return pattern_tokens(pattern)


def add_patterns(by_tokens: dict[bytes, int], selector: Selector, field: str, value: str,
                 patterns: list[bytes], mask: int) -> None:
    """Each kernel pattern of one value, merged into `by_tokens` (distinct pattern -> selectors)."""
    for tokens in patterns:
        if len(tokens) >= abi.D4C_PATTERN_MAX:
            raise CompileError(f"selector {selector.name}: {field} {value!r} is too long for the kernel")
        by_tokens[tokens] = by_tokens.get(tokens, 0) | mask


def pattern_entries(by_tokens: Mapping[bytes, int]) -> tuple[abi.PathPattern, ...]:
    entries = []
    for tokens, mask in by_tokens.items():
        entry = abi.PathPattern(selectors=mask, len=len(tokens))
        entry.tokens[: len(tokens)] = tokens
        entries.append(entry)
    return tuple(entries)


def compile_responses(selectors: Sequence[Selector], responses: Sequence[Response]) -> tuple[abi.Response, ...]:
    """D22: each response as the bits of its match and exclude selectors and of its actions."""
    bit_of = {sel.name: 1 << bit for bit, sel in enumerate(selectors)}
    compiled = []
    for r in responses:
        actions = 0
        for action in r.actions:
            actions |= abi.ACTION_BITS[action]
        compiled.append(abi.Response(
            match=sum(bit_of[n] for n in set(r.match)),
            exclude=sum(bit_of[n] for n in set(r.exclude)),
            actions=actions,
        ))
    return tuple(compiled)


def compile_file_section(policy: Policy) -> CompiledFilePolicy:
    """Compile the file section of a validated policy (an absent section compiles to nothing)."""
    selectors, responses = section_parts(policy, "file")
    pol = abi.FilePolicy()
    by_tokens: dict[bytes, int] = {}  # distinct kernel pattern -> selector mask
    for bit, sel in enumerate(selectors):
        for op_name, op_bit in abi.FILE_OP_BITS.items():
            if selects_operation(sel.operations, op_name):
                pol.op_selectors[op_bit.bit_length() - 1] |= 1 << bit
        if sel.ignoreVolumeMounts:
            pol.ignore_volume_mounts |= 1 << bit
        if sel.ignoreVolumeFiles:
            pol.ignore_volume_files |= 1 << bit
        if sel.targetFilePath:
            pol.path_selectors |= 1 << bit
        for pattern in sel.targetFilePath:
            add_patterns(by_tokens, sel, "targetFilePath", pattern, path_tokens(sel, "targetFilePath", pattern),
                         1 << bit)
    if len(by_tokens) > abi.D4C_MAX_PATTERNS:
        raise CompileError(f"{len(by_tokens)} distinct path patterns; the kernel holds at most {abi.D4C_MAX_PATTERNS}")

    patterns = pattern_entries(by_tokens)
    compiled_responses = compile_responses(selectors, responses)
    pol.n_patterns = len(patterns)
    pol.n_responses = len(compiled_responses)
    return CompiledFilePolicy(
        names=tuple(sel.name for sel in selectors),
        policy=pol,
        patterns=patterns,
        responses=compiled_responses,
        static_selectors=scope.container_only_all(selectors),
    )
