"""Bring-your-own embeddings: .npy and Parquet, bad shapes / ids / values, and a project on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medactive.data.embeddings import load_embeddings
from medactive.errors import DataError

IDS = [f"img{i}" for i in range(6)]


def test_npy_rows_in_image_order(tmp_path: Path) -> None:
    feats = np.arange(18, dtype=np.float64).reshape(6, 3)
    np.save(tmp_path / "f.npy", feats)
    got = load_embeddings(tmp_path / "f.npy", IDS)
    assert got.dtype == np.float32 and got.shape == (6, 3)
    np.testing.assert_array_equal(got, feats)


@pytest.mark.parametrize("array, message", [
    (np.zeros((5, 3)), "5 rows of embeddings for 6 images"),
    (np.zeros(6), r"2-D \(N, D\) array"),
    (np.array([[0.0, np.nan]] * 6), "row 0 contains NaN"),
    (np.array([["a", "b"]] * 6), "must be numeric"),
])
def test_bad_npy_is_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "f.npy", array)
    with pytest.raises(DataError, match=message):
        load_embeddings(tmp_path / "f.npy", IDS)


def test_parquet_by_id_in_any_order(tmp_path: Path) -> None:
    feats = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    order = [3, 0, 5, 1, 4, 2]
    table = pa.table({"image_id": [IDS[i] for i in order],
                      "embedding": [feats[i].tolist() for i in order]})
    pq.write_table(table, tmp_path / "f.parquet")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "f.parquet", IDS), feats)
    wide = pa.table({"id": [IDS[i] for i in order],
                     **{f"d{j}": feats[order, j] for j in range(4)}})
    pq.write_table(wide, tmp_path / "wide.parquet")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "wide.parquet", IDS), feats)


def test_bad_parquet_is_refused(tmp_path: Path) -> None:
    def write(name: str, **cols: list) -> Path:
        pq.write_table(pa.table(cols), tmp_path / name)
        return tmp_path / name

    vec = [[1.0, 2.0]] * 6
    with pytest.raises(DataError, match="no embedding for image id"):
        load_embeddings(write("a.parquet", image_id=[*IDS[:5], "other"], embedding=vec), IDS)
    with pytest.raises(DataError, match="appears twice"):
        load_embeddings(write("b.parquet", image_id=[*IDS[:5], "img0"], embedding=vec), IDS)
    with pytest.raises(DataError, match="no id column"):
        load_embeddings(write("c.parquet", label=IDS, embedding=vec), IDS)
    with pytest.raises(DataError, match="different lengths"):
        load_embeddings(write("d.parquet", image_id=IDS, embedding=[[1.0], *vec[1:]]), IDS)
    with pytest.raises(DataError, match="NaN"):
        load_embeddings(write("e.parquet", image_id=IDS, embedding=[[1.0, float("nan")]] * 6), IDS)
    with pytest.raises(DataError, match="not found"):
        load_embeddings(tmp_path / "missing.npy", IDS)
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(DataError, match="unknown embeddings format"):
        load_embeddings(tmp_path / "x.csv", IDS)
    (tmp_path / "bad.parquet").write_bytes(b"nope")
    with pytest.raises(DataError, match="not a readable Parquet"):
        load_embeddings(tmp_path / "bad.parquet", IDS)


def test_project_on_own_embeddings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    from medactive.annotate.store import ProjectStore
    from medactive.cli import main
    from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART

    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(24):
        pixels = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((24, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", feats)
    np.save(tmp_path / "short.npy", feats[:20])
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(folder), "--classes", "a,b",
                 "--image-size", "16", "--features", str(tmp_path / "short.npy")]) == 2
    assert "20 rows of embeddings for 24 images" in capsys.readouterr().err
    assert not (proj / "project.db").exists()
    assert main(["project", "init", str(proj), "--images", str(folder), "--classes", "a,b",
                 "--image-size", "16", "--features", str(tmp_path / "emb.npy")]) == 0
    assert main(["project", "query", str(proj), "--budget", "4", "--strategy", "hacon"]) == 2
    assert "dataset map" in capsys.readouterr().err
    # the default cold start needs no dataset map, so own embeddings take it unchanged
    assert main(["project", "query", str(proj), "--budget", "4"]) == 0
    with ProjectStore.open(proj) as store:
        first = store.latest_round()
        assert first is not None and first.strategy == DEFAULT_COLDSTART
        assert not (proj / "encoders").exists()  # no pre-training happened
        queued = [q.uid for q in store.queue(first.id)]
        store.import_labels([(u, "ab"[i % 2]) for i, u in enumerate(queued)], "test")
    assert main(["project", "query", str(proj), "--budget", "3"]) == 0
    with ProjectStore.open(proj) as store:
        second = store.latest_round()
        assert second.strategy == DEFAULT_ACQUISITION and second.params["encoder"] == "features"
        assert len(store.queue(second.id)) == 3
    assert set(queued) <= set(files)
