"""Read-only projects: a clear one-line error before any work, never a 500 or a traceback.

File modes do not bind root, and CI runs as root: there the commands run in a user namespace
(``unshare --user --map-user=1000``) that owns the files but holds no capabilities, so the modes
apply exactly as they do to an ordinary user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import medactive
from medactive.annotate.store import ProjectStore

SRC = str(Path(medactive.__file__).resolve().parents[1])
UNSHARE = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]


def _unprivileged(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``medactive ARGS`` as a user the file modes apply to."""
    cmd = [sys.executable, "-m", "medactive", *args]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None or subprocess.run(
                [*UNSHARE, "true"], capture_output=True).returncode != 0:
            pytest.skip("running as root without user namespaces: file modes are not enforced")
        cmd = UNSHARE + cmd
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr


@pytest.fixture
def read_only_db(project: ProjectStore, tmp_path: Path) -> Path:
    """A project whose project.db is read-only (its folder stays writable)."""
    project.close()
    project.path.chmod(0o444)
    yield project.dir
    project.path.chmod(0o644)


def test_read_only_db_import_serve_query(read_only_db: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,label\na/img001.png,benign\n")
    _one_line_error(_unprivileged(["project", "import", str(read_only_db), str(labels)]),
                    "read-only")
    # serve refuses to start (it used to start and answer every label with a bare 500)
    _one_line_error(_unprivileged(["project", "serve", str(read_only_db), "--port", "0"],
                                  timeout=60), "read-only")
    # query fails before loading images or training (it used to train, then fail)
    start = time.monotonic()
    _one_line_error(_unprivileged(["project", "query", str(read_only_db), "--budget", "2"]),
                    "read-only")
    assert time.monotonic() - start < 60
    assert not (read_only_db / "encoders").exists() and not (read_only_db / "models").exists()
    with ProjectStore.open(read_only_db) as store:
        assert store.history() == [] and store.rounds() == []


def test_read_only_folder_is_not_called_a_corrupt_database(read_only_db: Path) -> None:
    read_only_db.chmod(0o555)
    try:
        result = _unprivileged(["project", "status", str(read_only_db)])
    finally:
        read_only_db.chmod(0o755)
    _one_line_error(result, "is read-only")
    assert "not an SQLite database" not in result.stderr


def test_export_to_unwritable_folder(project: ProjectStore, tmp_path: Path) -> None:
    project.record(project.images()[0].id, "benign", "a")
    project.close()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = _unprivileged(["project", "export", str(project.dir), "-o",
                                str(locked / "out.csv")])
    finally:
        locked.chmod(0o755)
    _one_line_error(result, "cannot write")
    assert list(locked.iterdir()) == []
