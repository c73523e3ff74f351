"""The top-level Vagrantfile is valid (`vagrant validate`, Debian's vagrant package) and uses
the same provisioning script as `d4c vm build`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not shutil.which("vagrant"), reason="vagrant not installed (scripts/bootstrap.sh installs it)")


def validate(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", "validate"], cwd=directory, capture_output=True, check=False, text=True, timeout=120)


def test_vagrantfile_validates():
    result = validate(CHECKOUT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_vagrantfile_does_not(tmp_path):
    text = (CHECKOUT / "Vagrantfile").read_text().replace("config.vm.box =", "config.vm.boxx =")
    (tmp_path / "Vagrantfile").write_text(text)
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm/provision.sh").write_text("#!/bin/sh\n")
    assert validate(tmp_path).returncode != 0


def test_vagrantfile_provisions_with_the_image_script():
    text = (CHECKOUT / "Vagrantfile").read_text()
    assert re.search(r'provision\s+"shell",\s*path:\s*"vm/provision.sh"', text)
    assert 'config.vm.box = "debian/bookworm64"' in text
