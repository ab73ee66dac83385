"""`make test` installs Debian's chromium when it is missing (issue 20, item 12): the step's two
branches, checked without touching the real browser (a dry run against a path that does not
exist)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "ensure-chromium"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT)], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_present_browser_installs_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    done = _run(CHROMIUM=str(fake), DRY_RUN="1")
    assert done.returncode == 0 and "is installed" in done.stdout
    assert "apt-get" not in done.stdout


def test_missing_browser_is_installed_with_apt(tmp_path: Path) -> None:
    done = _run(CHROMIUM=str(tmp_path / "absent"), DRY_RUN="1")
    if shutil.which("apt-get") is None or (os.geteuid() != 0 and shutil.which("sudo") is None):
        assert done.returncode == 2 and done.stderr.startswith("error: ")  # one clear line
        return
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert done.returncode == 0, done.stderr
    assert f"would run: {sudo}apt-get update -qq" in done.stdout
    assert (f"would run: {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "chromium") in done.stdout


def test_make_test_runs_it_first() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "test: lint chromium" in makefile and ".ci/ensure-chromium" in makefile
    assert "apt-get" not in (ROOT / ".ci" / "run").read_text()  # one place installs it
