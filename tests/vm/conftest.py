"""tests/vm: host-side tests of the vm package. Tests marked `vm` boot the real VM (TCG,
~20 s per boot after a cached image; the first run builds the image, ~5-10 min)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: boots the BPF-LSM VM under qemu (needs root and the image build tools)")
