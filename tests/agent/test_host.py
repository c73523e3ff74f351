"""metadata/host.py: host.* from a fake /etc + /proc + /sys tree, agent.* id persistence."""

from __future__ import annotations

import os
import uuid

import pytest

from reference_agent.metadata.host import (
    collect_agent_facts,
    collect_host_facts,
    load_agent_id,
    local_ipv4,
    local_ipv6,
    parse_os_release,
)

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
        |-- 172.20.0.2
           /32 host LOCAL
Local:
           |-- 127.0.0.1
              /32 host LOCAL
"""

UBUNTU = '''NAME="Ubuntu"
VERSION="20.04.5 LTS (Focal Fossa)"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 20.04.5 LTS"
VERSION_ID="20.04"
'''


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(UBUNTU)
    (tmp_path / "etc/machine-id").write_text("1bb9e6a948dfb1c3cd38d1fdc8de4481\n")
    (tmp_path / "proc/sys/kernel/random").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/random/boot_id").write_text("815a760f-8153-49e1-9d0b-da0d3b2a468c\n")
    (tmp_path / "proc/net").mkdir()
    (tmp_path / "proc/net/fib_trie").write_text(FIB_TRIE)
    (tmp_path / "proc/net/if_inet6").write_text(
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n")
    (tmp_path / "proc/self/ns").mkdir(parents=True)
    os.symlink("pid:[4026531836]", tmp_path / "proc/self/ns/pid")
    for iface, mac in [("lo", "00:00:00:00:00:00"), ("eth0", "32:A9:CC:26:4C:E5"), ("eth1", "7a:ec:f0:3e:29:ee")]:
        (tmp_path / "sys/class/net" / iface).mkdir(parents=True)
        (tmp_path / "sys/class/net" / iface / "address").write_text(mac + "\n")
    return tmp_path


UNAME = os.uname_result(("Linux", "node-1", "5.10.161+", "#1 SMP Thu Jan 5 22:49:42 UTC 2023", "x86_64"))


def test_host_fields_like_the_seed(root):
    facts = collect_host_facts(root, uname=UNAME, hostname="docker-custom-agent")
    assert facts.ecs() == {
        "host.architecture": "amd64",
        "host.boot.id": "815a760f-8153-49e1-9d0b-da0d3b2a468c",
        "host.id": "1bb9e6a948dfb1c3cd38d1fdc8de4481",
        "host.hostname": "docker-custom-agent",
        "host.name": "docker-custom-agent",
        "host.ip": ["127.0.0.1", "172.20.0.2", "::1", "fe80::fc:ff:fe00:1"],
        "host.mac": ["32:a9:cc:26:4c:e5", "7a:ec:f0:3e:29:ee"],
        "host.os.family": "ubuntu",
        "host.os.full": "Ubuntu 20.04.5",
        "host.os.kernel": "5.10.161+ #1 SMP Thu Jan 5 22:49:42 UTC 2023",
        "host.os.name": "Linux",
        "host.os.platform": "ubuntu",
        "host.os.type": "linux",
        "host.os.version": "20.04.5",
        "host.pid_ns_ino": "4026531836",  # ECS keyword: a string (D31)
    }


def test_missing_sources_are_omitted_not_invented(tmp_path):
    facts = collect_host_facts(tmp_path, uname=UNAME, hostname="n")
    fields = facts.ecs()
    for absent in ("host.id", "host.boot.id", "host.ip", "host.mac", "host.os.family", "host.os.version",
                   "host.pid_ns_ino"):
        assert absent not in fields


def test_debian_version_falls_back_to_version_id():
    release = parse_os_release('NAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n')
    assert release["VERSION_ID"] == "12" and release["NAME"] == "Debian GNU/Linux"


def test_ip_parsers():
    assert local_ipv4(FIB_TRIE) == ["127.0.0.1", "172.20.0.2"]
    assert local_ipv6("fd000000000000000000000000000002 04 40 00 82     eth0\n") == ["fd00::2"]


def test_agent_id_is_persisted(tmp_path):
    state = tmp_path / "state"
    first = load_agent_id(state)
    assert str(uuid.UUID(first)) == first
    assert load_agent_id(state) == first
    (state / "agent-id").write_text("garbage")
    replaced = load_agent_id(state)
    assert replaced != first and load_agent_id(state) == replaced


def test_agent_facts(tmp_path):
    facts = collect_agent_facts(tmp_path)
    fields = facts.ecs()
    assert fields["agent.type"] == "cloud-defend"
    assert fields["agent.id"] == facts.id
    from importlib import metadata

    assert fields.get("agent.version") == metadata.version("d4c-conformance")


def test_agent_version_from_the_checkout_when_not_installed(tmp_path, monkeypatch):
    from importlib import metadata

    from reference_agent.metadata import host

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(host.metadata, "version", not_installed)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "d4c-conformance"\nversion = "9.9.1"\n')
    assert host.agent_version(tmp_path) == "9.9.1"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "1.0"\n')
    assert host.agent_version(tmp_path) is None
    # The real checkout this code runs from gives its own version.
    real = host.agent_version()
    assert real is not None and real.count(".") >= 1
