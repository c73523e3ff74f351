"""What an image is made of, and the cache key derived from it.

The key is a hash of every input that changes the bytes of the image: the provisioning
script, the guest-side files, the Python requirements from pyproject.toml, the container
image recipes, the Debian suite and mirror, and FORMAT (bumped when the build code changes
the image layout). Anything else (comments in the build code, the CLI) does not force a
rebuild of a 10-minute artefact.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from vm.containers import CONTAINER_IMAGES, ContainerImage
from vm.errors import VmError

# Bump when vm/build.py, vm/kernel.py or vm/containers.py change what ends up in an image.
FORMAT = 1
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
GUEST_FILES = ("vm/provision.sh", "vm/guest/init.sh", "vm/guest/agent.py")


@dataclass(frozen=True)
class ImageInputs:
    suite: str
    mirror: str
    files: tuple[tuple[str, str], ...]  # (path in the checkout, sha256 of its content)
    requirements: tuple[str, ...]
    containers: tuple[ContainerImage, ...]
    format: int = FORMAT

    def key(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def requirements(pyproject: Path) -> tuple[str, ...]:
    """The runtime + test + agent requirements (the same selection provision.sh installs)."""
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as error:
        raise VmError(f"{pyproject}: cannot read [project]: {error}") from None
    reqs = list(project.get("dependencies", []))
    for extra in ("test", "agent"):
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return tuple(r for r in reqs if not r.startswith(project["name"]))


def image_inputs(checkout: Path) -> ImageInputs:
    files = []
    for name in GUEST_FILES:
        try:
            files.append((name, hashlib.sha256((checkout / name).read_bytes()).hexdigest()))
        except OSError as error:
            raise VmError(f"{checkout / name}: {error.strerror}") from None
    return ImageInputs(
        suite=SUITE,
        mirror=MIRROR,
        files=tuple(files),
        requirements=requirements(checkout / "pyproject.toml"),
        containers=CONTAINER_IMAGES,
    )
