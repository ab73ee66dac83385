"""The decoded-image store: build, reuse, resume after kill -9, corruption, lazy indexing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.data.imagestore import ImageStore, StoreSettings
from medactive.data.lazy import LazyImages, prefetch_batches, take
from medactive.data.store import build_store, store_key
from medactive.errors import DataError

SRC = Path(__file__).resolve().parents[2] / "src"


def _write_pngs(folder: Path, n: int, size: int = 12, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:04d}.png"
        mode_rgb = i % 3 != 0  # a mix of colour and grey files
        shape = (size, size, 3) if mode_rgb else (size, size)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _expected(paths: list[Path], size: int, channels: int) -> np.ndarray:
    """Independent reference: Pillow decode, bicubic resize, Pillow's own colour conversion."""
    out = []
    for p in paths:
        with Image.open(p) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            img = img.resize((size, size), Image.Resampling.BICUBIC) if img.size != (size, size) \
                else img
            arr = np.asarray(img)
        out.append(arr if arr.ndim == 3 else arr[..., None])
    return np.stack(out)


def test_build_reads_back_every_image(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path / "src", 30)
    store = build_store(paths, StoreSettings(size=12, channels=3), root=tmp_path / "stores",
                        chunk_bytes=12 * 12 * 3 * 7, progress=False)
    images = store.images
    assert images.shape == (30, 12, 12, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:], _expected(paths, 12, 3))
    assert len(list((store.folder / "chunks").glob("*.u8"))) == 5  # 7 rows per chunk
    assert not (store.folder / "progress.jsonl").exists()


def test_grey_store_matches_pillow_luma(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path / "src", 6)
    store = build_store(paths, StoreSettings(size=12, channels=1), root=tmp_path / "s",
                        progress=False)
    got = store.images[:].astype(int)
    assert np.abs(got - _expected(paths, 12, 1).astype(int)).max() <= 1  # rounding of luma


def test_second_run_reuses_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_pngs(tmp_path / "src", 10)
    settings = StoreSettings(size=8, channels=3)
    first = build_store(paths, settings, root=tmp_path / "stores", progress=False)
    import medactive.data.store as store_mod

    def boom(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(store_mod, "_decode_chunk", boom)
    second = build_store(paths, settings, root=tmp_path / "stores", progress=False)
    assert second.folder == first.folder
    np.testing.assert_array_equal(second.images[:], first.images[:])
    # another size is another store; a changed file is another key
    assert store_key(["a"], settings) != store_key(["a"], StoreSettings(size=9, channels=3))
    assert store_key(["a"], settings) != store_key(["b"], settings)


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
import medactive.data.store as store_mod
real = store_mod.decode_source
def slow(data, path, size):
    time.sleep(0.02)
    return real(data, path, size)
store_mod.decode_source = slow
paths = sorted(Path(sys.argv[1]).glob('*.png'))
store_mod.build_store(paths, store_mod.StoreSettings(size=8, channels=3), root=Path(sys.argv[2]),
                      workers=1, chunk_bytes=8 * 8 * 3 * 4, progress=False)
"""


def test_build_resumes_after_kill_9(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _write_pngs(tmp_path / "src", 60)
    root = tmp_path / "stores"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(tmp_path / "src"), str(root)],
                            env=env)
    try:
        deadline = time.time() + 60
        log = None
        while time.time() < deadline:
            logs = list(root.glob("*/progress.jsonl"))
            if logs and len(logs[0].read_text().splitlines()) >= 3:
                log = logs[0]
                break
            time.sleep(0.02)
        assert log is not None, "the build never got going"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    folder = log.parent
    assert not (folder / "store.json").exists()
    finished = {json.loads(line)["chunk"] for line in log.read_text().splitlines()
                if line.strip().endswith("}")}
    import medactive.data.store as store_mod

    decoded: list[int] = []
    real = store_mod._decode_chunk

    def counting(task):  # type: ignore[no-untyped-def]
        decoded.append(task[0])
        return real(task)

    monkeypatch.setattr(store_mod, "_decode_chunk", counting)
    store = build_store(paths, StoreSettings(size=8, channels=3), root=root, workers=1,
                        progress=False)
    assert store.folder == folder
    assert not finished & set(decoded), "finished chunks were decoded again"
    assert len(finished) + len(decoded) == 15
    clean = build_store(paths, StoreSettings(size=8, channels=3), root=tmp_path / "clean",
                        chunk_bytes=8 * 8 * 3 * 4, progress=False)
    np.testing.assert_array_equal(store.images[:], clean.images[:])


def test_corrupt_and_truncated_chunks_are_reported(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path / "src", 12)
    store = build_store(paths, StoreSettings(size=8, channels=3), root=tmp_path / "s",
                        chunk_bytes=8 * 8 * 3 * 4, progress=False)
    chunk = store.folder / "chunks" / "c000001.u8"
    data = bytearray(chunk.read_bytes())
    data[5] ^= 0xFF
    chunk.write_bytes(bytes(data))
    reopened = ImageStore.open(store.folder)
    reopened.images[0:4]  # other chunks still read
    with pytest.raises(DataError, match=r"c000001\.u8: image store chunk is corrupt"):
        reopened.images[np.array([9, 4])]
    with pytest.raises(DataError, match="corrupt"):
        reopened.verify(progress=False)
    chunk.write_bytes(bytes(data[:-10]))
    with pytest.raises(DataError, match=r"c000001\.u8: image store chunk is missing or truncated"):
        ImageStore.open(store.folder)


def test_bad_files_fail_with_their_name(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path / "src", 4)
    paths[2].write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot decode image .*img0002\.png"):
        build_store(paths, StoreSettings(size=8, channels=3), root=tmp_path / "s",
                    progress=False)
    good = _write_pngs(tmp_path / "src2", 3)
    hashes = ["0" * 64] * 3
    with pytest.raises(DataError, match="changed on disk"):
        build_store(good, StoreSettings(size=8, channels=3), hashes=hashes,
                    root=tmp_path / "s", progress=False)
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        StoreSettings(size=8, channels=2)


def test_lazy_indexing_matches_numpy(tmp_path: Path) -> None:
    paths = _write_pngs(tmp_path / "src", 25)
    store = build_store(paths, StoreSettings(size=6, channels=3), root=tmp_path / "s",
                        chunk_bytes=6 * 6 * 3 * 4, progress=False)
    lazy, dense = store.images, store.images[:]
    rng = np.random.default_rng(1)
    for key in (3, -1, slice(2, 19, 3), rng.integers(0, 25, 40), rng.random(25) < 0.5,
                np.array([], dtype=np.int64), (slice(None), Ellipsis)):
        np.testing.assert_array_equal(lazy[key], dense[key])
    sub = lazy.subset(np.array([20, 3, 3, 7]))
    assert isinstance(sub, LazyImages) and sub.shape == (4, 6, 6, 3)
    np.testing.assert_array_equal(sub[np.array([1, 3])], dense[[3, 7]])
    assert sub.content_key != lazy.content_key
    assert sub.content_key == lazy.subset(np.array([20, 3, 3, 7])).content_key
    np.testing.assert_array_equal(take(dense, np.array([1, 2])), dense[[1, 2]])
    assert isinstance(take(lazy, np.array([1, 2])), LazyImages)
    np.testing.assert_array_equal(np.asarray(sub), dense[[20, 3, 3, 7]])
    with pytest.raises(IndexError):
        lazy[25]
    batches = [rng.permutation(25)[:7] for _ in range(6)] + [slice(0, 25)]
    for images in (lazy, dense):
        got = list(prefetch_batches(images, batches, depth=2))
        assert len(got) == len(batches)
        for b, arr in zip(batches, got, strict=True):
            np.testing.assert_array_equal(arr, dense[b])


def test_lazy_folder_dataset_equals_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image-folder CSV loaded lazily holds the same pixels, ids and labels; subsets stay lazy."""
    from medactive.data.folder import load_folder_splits

    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    paths = _write_pngs(tmp_path / "src", 30)
    rows = ["image,label"] + [f"src/{p.name},{'ab'[i % 2]}" for i, p in enumerate(paths)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    dense = load_folder_splits(tmp_path / "labels.csv", image_size=10, sizes=(20, 4, 6))
    lazy = load_folder_splits(tmp_path / "labels.csv", image_size=10, sizes=(20, 4, 6), lazy=True)
    for (_, d), (_, z) in zip(dense.items(), lazy.items(), strict=True):
        assert isinstance(z.images, LazyImages)
        np.testing.assert_array_equal(z.images[:], d.images)
        np.testing.assert_array_equal(z.labels, d.labels)
        assert list(z.ids) == list(d.ids)
    assert (tmp_path / "cache" / "stores").is_dir()


def test_kmeans_pixels_on_a_lazy_pool(tmp_path: Path) -> None:
    from medactive.coldstart import ColdStartView, get_coldstart_strategy

    paths = _write_pngs(tmp_path / "src", 40)
    store = build_store(paths, StoreSettings(size=8, channels=3), root=tmp_path / "s",
                        progress=False)
    view = ColdStartView(np.zeros((40, 2), np.float32), images=store.images)
    picks = get_coldstart_strategy("kmeans-pixels", pca_dim=5, seed=0).select(
        view, 6, np.random.default_rng(0))
    assert picks.shape == (6,) and len(set(picks.tolist())) == 6
