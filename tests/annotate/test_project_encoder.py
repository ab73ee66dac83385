"""`project init --encoder NAME [--encoder-weights PATH]`: stored in the project, shown by
`project status` and the page; every bad choice is one line, exit 2, and no project."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.annotate.conftest import make_image_folder

from medactive.annotate.app import create_app
from medactive.annotate.project import encoder_label, project_encoder
from medactive.annotate.store import ProjectStore
from medactive.cli import main
from medactive.models.encoders import EncoderSpec
from medactive.models.pretrained import weights_path


def _init(proj: Path, folder: Path, *extra: str) -> int:
    return main(["project", "init", str(proj), "--images", str(folder), "--classes", "a,b",
                 *extra])


def test_default_is_moco_and_old_projects_mean_moco(tmp_path: Path, image_folder: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    proj = tmp_path / "p"
    assert _init(proj, image_folder) == 0
    with ProjectStore.open(proj) as store:
        assert store.meta()["encoder"] == "moco" and store.meta()["encoder_weights"] is None
    # a project made before the registry has no encoder key: it used MoCo
    with sqlite3.connect(proj / "project.db") as db:
        db.execute("DELETE FROM meta WHERE key IN ('encoder', 'encoder_weights')")
    with ProjectStore.open(proj) as store:
        assert project_encoder(store.meta()) == EncoderSpec("moco")
    capsys.readouterr()
    assert main(["project", "status", str(proj)]) == 0
    assert "encoder: moco (MoCo v2 pre-trained on this pool)" in capsys.readouterr().out


def test_imagenet_with_weights_is_stored_and_shown(tmp_path: Path, image_folder: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    proj = tmp_path / "p"
    assert _init(proj, image_folder, "--encoder", "imagenet", "--encoder-weights",
                 str(weights_path())) == 0
    with ProjectStore.open(proj) as store:
        meta = store.meta()
        assert meta["encoder"] == "imagenet"
        assert meta["encoder_weights"] == str(weights_path().resolve())
        assert project_encoder(meta) == EncoderSpec("imagenet", weights_path().resolve())
    capsys.readouterr()
    assert main(["project", "status", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "encoder: imagenet (EfficientNet-Lite0, ImageNet weights; weights " in out
    # the page says which encoder, without the server's paths
    with ProjectStore.open(proj) as store:
        client = TestClient(create_app(store.dir), base_url="http://127.0.0.1:8765")
        assert client.get("/").status_code == 200  # the session cookie
        state = client.get("/api/state").json()
    assert state["encoder"] == "imagenet (EfficientNet-Lite0, ImageNet weights; own weights)"
    assert str(weights_path().parent) not in json.dumps(state)


def test_hf_folder_from_npz(tmp_path: Path, bloodmnist_path: Path, tiny_hf: Path,
                            capsys: pytest.CaptureFixture) -> None:
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--from-npz", str(bloodmnist_path), "--limit",
                 "10", "--encoder", "hf:facebook/dinov2-small", "--encoder-weights",
                 str(tiny_hf)]) == 0
    with ProjectStore.open(proj) as store:
        assert encoder_label(store.meta(), paths=False) == \
            "hf:facebook/dinov2-small (transformers backbone; own weights)"


def test_own_embeddings_replace_the_encoder(tmp_path: Path, image_folder: Path) -> None:
    import numpy as np

    np.save(tmp_path / "emb.npy", np.ones((12, 4), np.float32))
    proj = tmp_path / "p"
    assert _init(proj, image_folder, "--features", str(tmp_path / "emb.npy")) == 0
    with ProjectStore.open(proj) as store:
        assert project_encoder(store.meta()) is None
        assert "own embeddings" in encoder_label(store.meta())


@pytest.fixture
def tiny_hf(tmp_path: Path) -> Path:
    """A 2-layer DINOv2 saved with save_pretrained (random weights: no download)."""
    import transformers

    model = transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=28, patch_size=14))
    model.save_pretrained(tmp_path / "dino")
    return tmp_path / "dino"


@pytest.mark.parametrize("extra, message", [
    (["--encoder", "bogus"], "unknown encoder 'bogus'"),
    (["--encoder", "imagenet", "--encoder-weights", "/no/such/file.pt"],
     "--encoder-weights /no/such/file.pt: no such file or folder"),
    (["--encoder", "moco", "--encoder-weights", "WEIGHTS"], "does not apply to moco"),
    (["--encoder-weights", "WEIGHTS"], "--encoder-weights needs --encoder"),
    (["--encoder", "imagenet", "--encoder-weights", "NOTES"], "not a weights checkpoint"),
    (["--encoder", "imagenet", "--encoder-weights", "DINO"], "another architecture"),
    (["--encoder", "hf:NOCONFIG"], "has no config.json"),
    (["--encoder", "hf:medactive-tests/never-downloaded"], "--encoder-weights FOLDER"),
    (["--encoder", "imagenet", "--features", "EMB"], "replace the encoder"),
])
def test_bad_encoder_is_one_line_and_no_project(
        tmp_path: Path, tiny_hf: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture, extra: list[str], message: str) -> None:
    import numpy as np

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach for the network in a test
    folder = make_image_folder(tmp_path / "raw")
    (tmp_path / "notes.pt").write_text("not weights")
    (tmp_path / "noconfig").mkdir()
    np.save(tmp_path / "emb.npy", np.ones((12, 4), np.float32))
    paths = {"WEIGHTS": str(weights_path()), "NOTES": str(tmp_path / "notes.pt"),
             "DINO": str(tiny_hf / "model.safetensors"), "hf:NOCONFIG": f"hf:{tmp_path}/noconfig",
             "EMB": str(tmp_path / "emb.npy")}
    proj = tmp_path / "p"
    assert _init(proj, folder, *[paths.get(a, a) for a in extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not proj.exists()  # nothing half-made


def test_a_later_round_on_cached_features_builds_no_network(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default acquisition trains the head on cached features: the encoder network is
    built for the first query's extraction only (a DINOv2-small build cost 3.7 s a round)."""
    from medactive.models.encoders import ResolvedEncoder

    builds: list[int] = []
    real_build = ResolvedEncoder.build

    def counted(self: ResolvedEncoder, in_channels: int) -> object:
        builds.append(in_channels)
        return real_build(self, in_channels)

    monkeypatch.setattr(ResolvedEncoder, "build", counted)
    folder = make_image_folder(tmp_path / "images", n=16, size=32)
    proj = tmp_path / "p"
    assert _init(proj, folder, "--encoder", "imagenet") == 0
    assert main(["project", "settings", str(proj), "--validation-share", "0"]) == 0
    assert main(["project", "query", str(proj), "--budget", "6"]) == 0
    assert builds == [3]  # the first query encodes the pool
    with ProjectStore.open(proj) as store:
        for i, item in enumerate(store.queue(1)):
            store.record(item.image_id, "ab"[i % 2], "dr-a", 1)
    assert main(["project", "query", str(proj), "--budget", "4"]) == 0
    with ProjectStore.open(proj) as store:
        assert len(store.rounds()) == 2
    assert builds == [3]  # features from the cache, the head on them: no network
