"""``medactive data info`` on an image folder described by a CSV (HAM10000 / ISIC layout)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medactive.cli import main


def test_data_info_on_a_csv_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = ["image,dx,split"]
    for i in range(12):
        name = f"img{i:02d}"
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
        rows.append(f"{name},{'nv' if i % 3 else 'mel'},{['train', 'train', 'val', 'test'][i % 4]}")
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    assert main(["data", "info", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "mel" in out and "nv" in out and "28x28" in out


def test_data_info_csv_with_missing_image_is_one_line(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("image,dx\nnothere,nv\nalso,mel\n")
    assert main(["data", "info", str(tmp_path / "labels.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothere" in err[0] and "row 2" in err[0]
