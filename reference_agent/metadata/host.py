"""Facts about the node (host.*) and the agent itself (agent.*) that go into every event.

Everything here is read from the machine: /etc/machine-id, /etc/os-release, uname, /proc.
Fields a node cannot know are left out, never guessed: cloud.* (needs a cloud metadata
service this agent does not query), orchestrator.cluster.* (comes from the agent config).

Value formats follow the seed's examples where ECS leaves room: host.architecture is the Go
architecture name (`amd64`, `arm64`, as Elastic's agent reports it), host.os.name is the
kernel's name (`Linux`), host.os.family/platform is os-release ID, host.mac is lowercase
colon-separated.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

AGENT_TYPE = "cloud-defend"
PACKAGE_NAME = "d4c-conformance"
AGENT_ID_FILE = "agent-id"

# uname machine -> Go GOARCH, the spelling the seed's example uses ('amd64').
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386", "armv7l": "arm",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class HostFacts:
    architecture: str
    hostname: str
    name: str
    os_kernel: str
    os_name: str
    os_type: str
    boot_id: str | None = None
    id: str | None = None
    ip: tuple[str, ...] = ()
    mac: tuple[str, ...] = ()
    os_family: str | None = None
    os_platform: str | None = None
    os_full: str | None = None
    os_version: str | None = None
    pid_ns_ino: int | None = None

    def ecs(self) -> dict[str, Any]:
        """The host.* fields (dotted keys), only those known."""
        fields: dict[str, Any] = {
            "host.architecture": self.architecture,
            "host.boot.id": self.boot_id,
            "host.id": self.id,
            "host.hostname": self.hostname,
            "host.name": self.name,
            "host.ip": list(self.ip) or None,
            "host.mac": list(self.mac) or None,
            "host.os.family": self.os_family,
            "host.os.full": self.os_full,
            "host.os.kernel": self.os_kernel,
            "host.os.name": self.os_name,
            "host.os.platform": self.os_platform,
            "host.os.type": self.os_type,
            "host.os.version": self.os_version,
            # ECS types host.pid_ns_ino as keyword: a JSON string (D31).
            "host.pid_ns_ino": None if self.pid_ns_ino is None else str(self.pid_ns_ino),
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class AgentFacts:
    id: str
    version: str | None
    type: str = AGENT_TYPE

    def ecs(self) -> dict[str, Any]:
        fields = {"agent.id": self.id, "agent.type": self.type, "agent.version": self.version}
        return {k: v for k, v in fields.items() if v is not None}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values optionally quoted."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[key.strip()] = value
    return out


def local_ipv4(fib_trie: str) -> list[str]:
    """Local IPv4 addresses from /proc/net/fib_trie (the address line before `/32 host LOCAL`)."""
    found: list[str] = []
    last = None
    for line in fib_trie.splitlines():
        m = re.match(r"\s*\|--\s+(\d+\.\d+\.\d+\.\d+)\s*$", line)
        if m:
            last = m.group(1)
            continue
        if last and "/32 host LOCAL" in line and last not in found:
            found.append(last)
    return found


def local_ipv6(if_inet6: str) -> list[str]:
    """IPv6 addresses from /proc/net/if_inet6 (32 hex digits, then index, prefix, scope...)."""
    found: list[str] = []
    for line in if_inet6.splitlines():
        parts = line.split()
        if parts and re.fullmatch(r"[0-9a-fA-F]{32}", parts[0]):
            addr = str(ipaddress.IPv6Address(int(parts[0], 16)))
            if addr not in found:
                found.append(addr)
    return found


def mac_addresses(sys_class_net: Path) -> list[str]:
    macs: list[str] = []
    try:
        ifaces = sorted(os.listdir(sys_class_net))
    except OSError:
        return macs
    for iface in ifaces:
        mac = (_read(sys_class_net / iface / "address") or "").lower()
        if re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) and mac != "00:00:00:00:00:00" and mac not in macs:
            macs.append(mac)
    return macs


def _ns_inode(link: Path) -> int | None:
    try:
        target = os.readlink(link)  # "pid:[4026531836]"
    except OSError:
        return None
    m = re.fullmatch(r"\w+:\[(\d+)\]", target)
    return int(m.group(1)) if m else None


def collect_host_facts(root: Path = Path("/"), *, uname: os.uname_result | None = None,
                       hostname: str | None = None) -> HostFacts:
    """Read the host facts; `root` lets tests point at a fake /etc and /proc tree."""
    u = uname or os.uname()
    release = parse_os_release(_read(root / "etc/os-release") or _read(root / "usr/lib/os-release") or "")
    # host.os.version: the full dotted version when VERSION carries it ("20.04.5 LTS"),
    # else VERSION_ID ("12").
    version_match = re.match(r"\d+(\.\d+)*", release.get("VERSION", ""))
    version = version_match.group(0) if version_match else release.get("VERSION_ID")
    distro = release.get("NAME")
    full = f"{distro} {version}" if distro and version else (release.get("PRETTY_NAME") or None)
    machine_id = _read(root / "etc/machine-id") or None
    name = hostname or socket.gethostname() or u.nodename
    ips = local_ipv4(_read(root / "proc/net/fib_trie") or "") + local_ipv6(_read(root / "proc/net/if_inet6") or "")
    return HostFacts(
        architecture=_GO_ARCH.get(u.machine, u.machine),
        hostname=name,
        name=name,
        os_kernel=f"{u.release} {u.version}",
        os_name=u.sysname,
        os_type=u.sysname.lower(),
        boot_id=_read(root / "proc/sys/kernel/random/boot_id") or None,
        id=machine_id,
        ip=tuple(ips),
        mac=tuple(mac_addresses(root / "sys/class/net")),
        os_family=release.get("ID"),
        os_platform=release.get("ID"),
        os_full=full,
        os_version=version,
        pid_ns_ino=_ns_inode(root / "proc/self/ns/pid"),
    )


def agent_version(checkout: Path = Path(__file__).resolve().parents[2]) -> str | None:
    """The installed package's version, else the version in the pyproject.toml of the checkout
    this code runs from (a VM or container running the shared checkout through PYTHONPATH);
    None (field omitted) when neither says."""
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:
        pass
    try:
        project = tomllib.loads((checkout / "pyproject.toml").read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = project.get("version") if project.get("name") == PACKAGE_NAME else None
    return version if isinstance(version, str) else None


def load_agent_id(state_dir: Path) -> str:
    """The agent's UUID, created once and kept in the state dir so it survives restarts."""
    path = state_dir / AGENT_ID_FILE
    existing = _read(path)
    if existing:
        try:
            return str(uuid.UUID(existing))
        except ValueError:
            pass  # corrupt file: replace it below rather than ship a malformed agent.id
    state_dir.mkdir(parents=True, exist_ok=True)
    new = str(uuid.uuid4())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees a half-written id
    return new


def collect_agent_facts(state_dir: Path) -> AgentFacts:
    return AgentFacts(id=load_agent_id(state_dir), version=agent_version())
