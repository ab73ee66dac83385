"""``medactive data ...``: output on real data, one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

from medactive.cli import main


def test_data_info_real(capsys, bloodmnist_path):
    assert main(["data", "info", str(bloodmnist_path)]) == 0
    out = capsys.readouterr().out
    assert "bloodmnist" in out and "28x28" in out and "basophil" in out
    assert "2330" in out and "11959" in out and "1712" in out and "3421" in out


def test_data_info_missing_file_one_line_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "medactive", "data", "info", str(tmp_path / "missing.npz")],
        capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing.npz" in lines[0]


def test_data_info_unknown_name(capsys):
    assert main(["data", "info", "nosuchmnist"]) == 2
    assert "unknown dataset 'nosuchmnist'" in capsys.readouterr().err
