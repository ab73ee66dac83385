"""`[model] encoder = "features"`: an experiment on your own embeddings, no backbone."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.experiment.conftest import config_text, write_synthetic_npz

from medactive.errors import ConfigError
from medactive.experiment import load_config, run_experiment


def _embeddings(npz) -> tuple[list[str], np.ndarray]:
    """Ids and features of every image in train, val, test order: the mean colour plus noise."""
    data = np.load(npz)
    ids, feats = [], []
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        images = data[f"{split}_images"].astype(np.float32) / 255.0
        ids += [f"{split}-{i}" for i in range(images.shape[0])]
        mean = images[:, 3:9, 3:9].mean(axis=(1, 2))
        feats.append(np.concatenate([mean, rng.standard_normal((mean.shape[0], 5)) * 0.01], 1))
    return ids, np.concatenate(feats).astype(np.float32)


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_experiment_on_own_embeddings(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    ids, feats = _embeddings(npz)
    if fmt == "npy":
        np.save(tmp_path / "emb.npy", feats)
    else:  # rows shuffled: Parquet rows are matched by id
        order = np.random.default_rng(1).permutation(len(ids))
        pq.write_table(pa.table({"image_id": [ids[i] for i in order],
                                 "embedding": [feats[i].tolist() for i in order]}),
                       tmp_path / "emb.parquet")
    text = config_text(npz, strategies='["entropy", "aeig", "coreset"]',
                       initial='["kmeans-centroid"]', encoder="features")
    text = text.replace('encoder = "features"', f'encoder = "features"\nfeatures = "emb.{fmt}"')
    (tmp_path / "c.toml").write_text(text.replace("repeats = 2", "repeats = 1"))
    out = run_experiment(load_config(tmp_path / "c.toml"), tmp_path / "run", progress=False,
                         report=False)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["strategy"] for r in records} == {"entropy", "aeig", "coreset"}
    assert all(r["auc"] > 0.9 for r in records if r["round"] == 2)  # the features separate classes
    info = json.loads((out / "dataset.json").read_text())
    assert info["encoder"]["encoder"] == "features"
    assert not (tmp_path / "cache" / "encoders").exists()  # no pre-training


def test_features_encoder_config_errors(tmp_path):
    npz = write_synthetic_npz(tmp_path / "s.npz")
    (tmp_path / "a.toml").write_text(config_text(npz, encoder="features"))
    with pytest.raises(ConfigError, match="go together"):
        load_config(tmp_path / "a.toml")
    text = config_text(npz, encoder="features").replace(
        'encoder = "features"', 'encoder = "features"\nfeatures = "x.npy"\nmode = "finetune"')
    (tmp_path / "b.toml").write_text(text)
    with pytest.raises(ConfigError, match="head only"):
        load_config(tmp_path / "b.toml")
    text = config_text(npz, encoder="features", initial='["hacon"]').replace(
        'encoder = "features"', 'encoder = "features"\nfeatures = "emb.npy"')
    np.save(tmp_path / "emb.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "c.toml").write_text(text)
    from medactive.errors import DataError

    with pytest.raises(DataError, match="rows of embeddings for"):
        run_experiment(load_config(tmp_path / "c.toml"), tmp_path / "run", progress=False)
