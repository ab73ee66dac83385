"""``hf:`` encoders (transformers backbones): preprocessing and pooling against references
computed straight from the transformers model, and every bad input as one ConfigError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medactive.errors import ConfigError
from medactive.models.encoders import check_encoder, resolve_encoder
from medactive.models.features import encode_pool

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (6, 28, 28, 3), dtype=np.uint8)


def _model(folder: Path) -> torch.nn.Module:
    """The transformers model of ``folder``, loaded without medactive."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(folder)).eval()


def _pixels(images: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """The reference preprocessing, in NumPy: [0, 1], normalised, (B, 3, H, W)."""
    x = images.astype(np.float64) / 255.0
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = (x - np.array(mean)) / np.array(std)
    return torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))


def _encode(folder: Path, images: np.ndarray, cache: Path, weights: Path | None = None
            ) -> np.ndarray:
    spec = check_encoder(f"hf:{folder}", weights)
    return np.asarray(encode_pool(spec, images, cache_root=cache, progress=False).features)


def test_dinov2_cls_token_with_its_processor(tiny_models: dict, tmp_path: Path) -> None:
    folder = tiny_models["dino"]
    with torch.no_grad():
        out = _model(folder)(pixel_values=_pixels(IMAGES, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]))
    expected = out.last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(_encode(folder, IMAGES, tmp_path), expected, atol=2e-5)
    # DINOv2's pooler output is that (layer-normed) CLS token
    np.testing.assert_allclose(out.pooler_output.numpy(), expected, atol=1e-6)


def test_grey_images_are_repeated_to_rgb(tiny_models: dict, tmp_path: Path) -> None:
    grey = IMAGES[..., :1]
    folder = tiny_models["dino"]
    with torch.no_grad():
        out = _model(folder)(pixel_values=_pixels(grey, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]))
    np.testing.assert_allclose(_encode(folder, grey, tmp_path), out.last_hidden_state[:, 0],
                               atol=2e-5)


def test_images_are_resized_to_the_model_input(tiny_models: dict, tmp_path: Path) -> None:
    big = np.repeat(np.repeat(IMAGES, 2, axis=1), 2, axis=2)  # 56 px -> the 28 px crop size
    folder = tiny_models["dino"]
    x = torch.from_numpy(big.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", antialias=True,
                                        align_corners=False)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    with torch.no_grad():
        out = _model(folder)(pixel_values=(x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    np.testing.assert_allclose(_encode(folder, big, tmp_path), out.last_hidden_state[:, 0],
                               atol=2e-5)


def test_vit_uses_the_cls_token_not_its_projection_pooler(tiny_models: dict,
                                                          tmp_path: Path) -> None:
    big = np.repeat(np.repeat(IMAGES, 2, axis=1), 2, axis=2)[:, :32, :32]  # the config's 32 px
    with torch.no_grad():
        out = _model(tiny_models["vit"])(pixel_values=_pixels(big, [0.485, 0.456, 0.406],
                                                               [0.229, 0.224, 0.225]))
    got = _encode(tiny_models["vit"], big, tmp_path)
    np.testing.assert_allclose(got, out.last_hidden_state[:, 0], atol=2e-5)
    assert not np.allclose(got, out.pooler_output, atol=1e-3)


def test_convnext_uses_its_pooled_output(tiny_models: dict, tmp_path: Path) -> None:
    big = np.repeat(np.repeat(IMAGES, 2, axis=1), 2, axis=2)[:, :32, :32]
    model = _model(tiny_models["convnext"])
    with torch.no_grad():
        hidden = model(pixel_values=_pixels(big, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
                       ).last_hidden_state
        expected = model.layernorm(hidden.mean(dim=(-2, -1)))  # ConvNeXt's pooling, by hand
    np.testing.assert_allclose(_encode(tiny_models["convnext"], big, tmp_path), expected,
                               atol=2e-5)


def test_clip_uses_the_projected_image_embedding(tiny_models: dict, tmp_path: Path) -> None:
    big = np.repeat(np.repeat(IMAGES, 2, axis=1), 2, axis=2)[:, :32, :32]
    model = _model(tiny_models["clip"])
    with torch.no_grad():
        vision = model.vision_model(pixel_values=_pixels(big, [0.485, 0.456, 0.406],
                                                          [0.229, 0.224, 0.225]))
        expected = model.visual_projection(vision.pooler_output)
    spec = check_encoder(f"hf:{tiny_models['clip']}")
    pool = encode_pool(spec, big, cache_root=tmp_path, progress=False)
    np.testing.assert_allclose(pool.features, expected, atol=2e-5)
    assert pool.features.shape[1] == 16
    assert isinstance(pool.encoder.model.text_model, torch.nn.Identity)  # text tower dropped


def test_weights_file_with_task_prefix_loads(tiny_models: dict, tmp_path: Path) -> None:
    """A state dict saved from a task model (keys ``dinov2.*``) or a plain file of the same
    architecture gives the folder's features."""
    from safetensors.torch import load_file, save_file

    folder = tiny_models["dino"]
    state = load_file(str(folder / "model.safetensors"))
    save_file({f"dinov2.{k}": v for k, v in state.items()}, str(tmp_path / "task.safetensors"))
    torch.save(state, tmp_path / "plain.pt")
    reference = _encode(folder, IMAGES, tmp_path / "c0")
    for name in ("task.safetensors", "plain.pt"):
        np.testing.assert_allclose(_encode(folder, IMAGES, tmp_path / f"c-{name}",
                                           tmp_path / name),
                                   reference, atol=1e-6)


def test_weights_folder_stands_for_the_hub_id(tiny_models: dict, tmp_path: Path) -> None:
    """Air-gapped: ``hf:facebook/dinov2-small --encoder-weights FOLDER`` never reaches the hub."""
    spec = check_encoder("hf:facebook/dinov2-small", tiny_models["dino"])
    assert spec.weights == tiny_models["dino"].resolve()
    pool = encode_pool(spec, IMAGES, cache_root=tmp_path, progress=False)
    np.testing.assert_allclose(pool.features, _encode(tiny_models["dino"], IMAGES, tmp_path / "b"),
                               atol=1e-6)


def test_cache_hit_builds_nothing_and_survives_a_moved_model(tiny_models: dict,
                                                             tmp_path: Path) -> None:
    spec = check_encoder(f"hf:{tiny_models['dino']}")
    first = encode_pool(spec, IMAGES, cache_root=tmp_path, progress=False)
    again = encode_pool(spec, IMAGES, cache_root=tmp_path, progress=False)
    assert again.from_cache and again._encoder is None and again.key == first.key
    # the same weights in another folder: the same content digest, the same cache entry
    copy = shutil.copytree(tiny_models["dino"], tmp_path / "copy")
    moved = encode_pool(check_encoder(f"hf:{copy}"), IMAGES, cache_root=tmp_path, progress=False)
    assert moved.from_cache and moved.key == first.key


# --------------------------------------------------------------------------- bad input


def _error(name: str, weights: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        check_encoder(name, weights)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_not_an_image_model(tiny_models: dict) -> None:
    assert "not an image model" in _error(f"hf:{tiny_models['bert']}")


def test_model_type_transformers_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-model"}))
    assert "does not know this model" in _error(f"hf:{tmp_path}")


def test_timm_wrapped_models_are_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "timm_wrapper"}))
    assert "torchvision" in _error(f"hf:{tmp_path}")


def test_folder_without_config_or_weights(tiny_models: dict, tmp_path: Path) -> None:
    assert "has no config.json" in _error(f"hf:{tmp_path}")
    assert "has no config.json" in _error("hf:facebook/dinov2-small", tmp_path)
    shutil.copy(tiny_models["dino"] / "config.json", tmp_path / "config.json")
    assert "no weights file" in _error(f"hf:{tmp_path}")
    assert "no such folder" in _error("hf:./no/such/folder")


def test_weights_file_of_another_architecture(tiny_models: dict) -> None:
    message = _error(f"hf:{tiny_models['dino']}", tiny_models["convnext"] / "model.safetensors")
    assert "another architecture" in message and "--encoder-weights" in message


def test_weights_file_that_is_not_a_checkpoint(tiny_models: dict, tmp_path: Path) -> None:
    for name, content in (("junk.safetensors", b"not a header" * 20), ("junk.pt", b"hello")):
        (tmp_path / name).write_bytes(content)
        assert "not a weights checkpoint" in _error(f"hf:{tiny_models['dino']}", tmp_path / name)
    torch.save({"epoch": 3}, tmp_path / "no-tensors.pt")
    assert "no dict of named tensors" in _error(f"hf:{tiny_models['dino']}",
                                                tmp_path / "no-tensors.pt")


def test_folder_with_weights_of_another_architecture(tiny_models: dict, tmp_path: Path) -> None:
    """The folder's config says DINOv2, its weights are a ConvNeXt's: refused when the weights
    are loaded, before any image is encoded, with no cache entry left behind."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(tiny_models["dino"] / "config.json", mixed / "config.json")
    shutil.copy(tiny_models["convnext"] / "model.safetensors", mixed / "model.safetensors")
    spec = check_encoder(f"hf:{mixed}")  # the cheap check reads no tensors of a folder
    with pytest.raises(ConfigError, match="another architecture"):
        encode_pool(spec, IMAGES, cache_root=tmp_path / "cache", progress=False)
    assert not any((tmp_path / "cache" / "feature-cache").glob("*/*"))


def test_offline_without_a_copy_names_encoder_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _error("hf:medactive-tests/never-downloaded")
    assert "--encoder-weights" in message and "offline" in message


def test_no_network_names_encoder_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls: list[bool] = []

    def no_network(repo_id: str, *, local_files_only: bool, **kwargs: object) -> str:
        calls.append(local_files_only)
        raise LocalEntryNotFoundError("ConnectError: [Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    message = _error("hf:medactive-tests/never-downloaded")
    assert "--encoder-weights" in message and "no network" in message
    assert calls == [True, False]  # the local cache first, then the hub


def test_unknown_hub_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def not_found(repo_id: str, *, local_files_only: bool, **kwargs: object) -> str:
        if local_files_only:
            from huggingface_hub.errors import LocalEntryNotFoundError

            raise LocalEntryNotFoundError("not cached")
        response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co"))
        raise RepositoryNotFoundError("404", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_found)
    assert "has no such model" in _error("hf:medactive-tests/no-such-model")


def test_malformed_hub_id() -> None:
    assert "neither an existing folder nor a Hugging Face hub id" in _error("hf:not an id!")


def test_resolved_identity_changes_with_the_weights(tiny_models: dict, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_models["dino"] / "model.safetensors"))
    save_file({k: v + 1 for k, v in state.items()}, str(tmp_path / "other.safetensors"))
    same = resolve_encoder(check_encoder(f"hf:{tiny_models['dino']}"))
    other = resolve_encoder(check_encoder(f"hf:{tiny_models['dino']}",
                                          tmp_path / "other.safetensors"))
    assert same.key != other.key


def test_hub_models_are_pinned_to_the_commit_found(tiny_models: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub id is recorded with the snapshot's commit, and later loads ask for that commit:
    a new upload of the model cannot change a project's features half-way."""
    import huggingface_hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--org--tiny" / "snapshots" / commit
    shutil.copytree(tiny_models["dino"], snapshot)
    asked: list[object] = []

    def cached(repo_id: str, *, revision: str | None = None, **kwargs: object) -> str:
        asked.append(revision)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached)
    spec = check_encoder("hf:org/tiny")
    assert spec.revision == commit and spec.as_meta()["encoder_revision"] == commit
    assert "revision 0123456789" in spec.describe()
    resolved = resolve_encoder(spec)
    assert asked == [None, commit]  # found first, then pinned
    assert resolved.identity["weights"] == {"hub": "org/tiny", "revision": commit}
