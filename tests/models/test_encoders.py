"""The encoder registry and the feature cache: ``moco``, ``imagenet`` (bundled weights, real
BloodMNIST images) and the API the product calls (check, encode a pool, encode more images)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medactive.data.lazy import LazyImages
from medactive.errors import ConfigError
from medactive.models import extract_features
from medactive.models.contrastive import pretrain_moco
from medactive.models.contrastive_config import MocoConfig, fit_to_pool
from medactive.models.encoders import EncoderSpec, check_encoder
from medactive.models.features import (
    default_batch_size,
    encode_pool,
    images_identity,
    own_features,
)
from medactive.models.pretrained import build_efficientnet_lite0, weights_path

TINY_MOCO = MocoConfig(epochs=1, batch_size=32, queue_size=64, warmup_epochs=0, num_threads=1)


@pytest.fixture(scope="module")
def blood_images(blood) -> tuple[np.ndarray, np.ndarray]:
    """8 training and 4 test images of the real BloodMNIST (28 px RGB; the ImageNet encoder
    sees them at 224 px, so every image costs a full-size forward pass)."""
    return blood.train.images[:8], blood.test.images[:4]


def _error(name: str, weights: Path | str | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        check_encoder(name, weights)
    assert "\n" not in str(info.value)
    return str(info.value)


# --------------------------------------------------------------------------- the registry


def test_specs_round_trip_through_project_metadata(tmp_path: Path) -> None:
    assert check_encoder("moco") == EncoderSpec("moco")
    spec = check_encoder("imagenet", weights_path())
    assert spec.weights == weights_path().resolve() and spec.family == "imagenet"
    assert EncoderSpec.from_meta(spec.as_meta()) == spec
    assert EncoderSpec.from_meta({}) == EncoderSpec("moco")  # projects made before the registry
    assert "ImageNet" in check_encoder("imagenet").describe()


def test_unknown_encoder_and_missing_weights(tmp_path: Path) -> None:
    message = _error("bogus")
    assert "unknown encoder 'bogus'" in message and "hf:" in message
    assert "unknown encoder" in _error("hf:")
    assert "no such file or folder" in _error("imagenet", tmp_path / "absent.pt")
    assert "does not apply to moco" in _error("moco", weights_path())


def test_imagenet_refuses_foreign_and_broken_checkpoints(tmp_path: Path) -> None:
    from medactive.models import build_backbone

    torch.save(build_backbone("resnet18").state_dict(), tmp_path / "resnet.pt")
    assert "another architecture" in _error("imagenet", tmp_path / "resnet.pt")
    (tmp_path / "notes.pt").write_text("these are not weights")
    assert "not a weights checkpoint" in _error("imagenet", tmp_path / "notes.pt")
    assert "not a folder" in _error("imagenet", tmp_path)


def test_imagenet_weights_file_is_loaded(tmp_path: Path, blood_images) -> None:
    """Your own EfficientNet-Lite0 checkpoint: a changed tensor changes the features; a copy
    of the bundled file is the same encoder (same content digest, same cache entry)."""
    train, _ = blood_images
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    shutil.copy(weights_path(), tmp_path / "copy.pth")
    state["_conv_head.weight"] = state["_conv_head.weight"] * 0.5
    torch.save({"state_dict": state}, tmp_path / "tuned.ckpt")  # Lightning-style wrapper
    bundled = encode_pool(check_encoder("imagenet"), train[:4], cache_root=tmp_path / "c",
                          progress=False)
    copy = encode_pool(check_encoder("imagenet", tmp_path / "copy.pth"), train[:4],
                       cache_root=tmp_path / "c", progress=False)
    tuned = encode_pool(check_encoder("imagenet", tmp_path / "tuned.ckpt"), train[:4],
                        cache_root=tmp_path / "c", progress=False)
    assert copy.from_cache and copy.key == bundled.key
    assert tuned.key != bundled.key and not np.allclose(tuned.features, bundled.features)


# --------------------------------------------------------------------------- imagenet features


def test_imagenet_features_match_the_plain_forward_pass(tmp_path: Path, blood_images) -> None:
    train, test = blood_images
    reference = extract_features(build_efficientnet_lite0(3), train, progress=False)
    pool = encode_pool(check_encoder("imagenet"), train, cache_root=tmp_path, progress=False)
    assert isinstance(pool.features, np.memmap) and pool.features.dtype == np.float32
    np.testing.assert_allclose(pool.features, reference, rtol=1e-4, atol=1e-4)
    assert pool.confidence is None and pool.maps is None
    again = encode_pool(check_encoder("imagenet"), train, cache_root=tmp_path, progress=False)
    assert again.from_cache and again._encoder is None  # a hit builds no network
    np.testing.assert_array_equal(again.features, pool.features)
    # further image sets: the same encoder, cached under their own key
    test_features = again.encode(test)
    np.testing.assert_allclose(test_features, extract_features(build_efficientnet_lite0(3), test,
                                                               progress=False), atol=1e-4)
    entries = list((tmp_path / "feature-cache").glob("*/meta.json"))
    assert len(entries) == 2
    assert isinstance(again.encoder, torch.nn.Module) and again.encoder.out_dim == 1280


def test_grey_pool_and_mismatched_channels(tmp_path: Path, blood_images) -> None:
    grey = blood_images[0][..., :1]
    pool = encode_pool(check_encoder("imagenet"), grey, cache_root=tmp_path, progress=False)
    reference = extract_features(build_efficientnet_lite0(1), grey, progress=False)
    np.testing.assert_allclose(pool.features, reference, atol=1e-4)
    with pytest.raises(ConfigError, match="channel"):
        pool.encode(blood_images[1])


def test_given_pool_key_names_the_pool(tmp_path: Path, blood_images) -> None:
    train = blood_images[0][:4]
    spec = check_encoder("imagenet")
    a = encode_pool(spec, train, pool_key="file-sha:1", cache_root=tmp_path, progress=False)
    b = encode_pool(spec, train, pool_key="file-sha:1", cache_root=tmp_path, progress=False)
    c = encode_pool(spec, train, pool_key="file-sha:2", cache_root=tmp_path, progress=False)
    assert b.from_cache and b.key == a.key and not c.from_cache and c.key != a.key
    assert images_identity(train) != images_identity(train[::-1].copy())


class _Source:
    """A minimal row source for a LazyImages (counts pixel reads)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images, self.reads = images, 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        n, h, w, c = self.images.shape
        return n, h, w, c

    @property
    def key(self) -> str:
        return "test-source"

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        self.reads += 1
        return self.images[rows]


def test_lazy_pool_matches_the_in_memory_one(tmp_path: Path, blood_images) -> None:
    train = blood_images[0]
    source = _Source(train)
    lazy = encode_pool(check_encoder("imagenet"), LazyImages(source), cache_root=tmp_path,
                       batch_size=3, progress=False)
    eager = encode_pool(check_encoder("imagenet"), train, cache_root=tmp_path / "b",
                        progress=False)
    np.testing.assert_allclose(lazy.features, eager.features, atol=1e-4)
    reads = source.reads
    assert reads == 3  # 8 images in batches of 3
    hit = encode_pool(check_encoder("imagenet"), LazyImages(source), cache_root=tmp_path,
                      progress=False)
    assert hit.from_cache and source.reads == reads  # the identity read no pixel


def test_bad_images_and_device(tmp_path: Path) -> None:
    spec = check_encoder("imagenet")
    with pytest.raises(ConfigError, match="uint8"):
        encode_pool(spec, np.zeros((2, 8, 8, 3), np.float32), cache_root=tmp_path)
    with pytest.raises(ConfigError, match="uint8"):
        encode_pool(spec, np.zeros((2, 8, 8, 4), np.uint8), cache_root=tmp_path)
    with pytest.raises(ConfigError, match="device"):
        encode_pool(spec, np.zeros((2, 8, 8, 3), np.uint8), cache_root=tmp_path, device="bogus")
    assert not (tmp_path / "feature-cache").exists()


# --------------------------------------------------------------------------- moco, own features


def test_moco_gives_the_map_and_encodes_further_sets(tmp_path: Path, blood) -> None:
    train, test = blood.train.images[:48], blood.test.images[:8]
    pool = encode_pool(check_encoder("moco"), train, moco=TINY_MOCO, cache_root=tmp_path,
                       progress=False)
    reference = pretrain_moco(train, fit_to_pool(TINY_MOCO, len(train)),
                              cache_root=tmp_path / "encoders", progress=False)
    assert reference.from_cache and pool.key == reference.key  # the same cache entry
    np.testing.assert_array_equal(pool.features, reference.features)
    np.testing.assert_array_equal(pool.confidence, reference.confidence)
    np.testing.assert_array_equal(pool.variability, reference.variability)
    assert pool.maps is not None and set(pool.maps) == set(reference.maps)
    expected = extract_features(reference.encoder, test, progress=False)
    np.testing.assert_allclose(pool.encode(test), expected, atol=1e-5)


def test_own_features_have_no_encoder() -> None:
    pool = own_features(np.ones((3, 2)))
    assert pool.encoder is None and pool.features.dtype == np.float32
    with pytest.raises(ConfigError, match="own embeddings"):
        pool.encode(np.zeros((1, 8, 8, 3), np.uint8))


# --------------------------------------------------------------------------- batching


def test_default_batch_size_follows_the_input_side() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [default_batch_size(s, cpu) for s in (28, 64, 224, 518)] == [256, 256, 32, 8]
    assert default_batch_size(224, cuda) == 128


def test_out_of_memory_halves_the_batch() -> None:
    from medactive.models import features

    class Picky(torch.nn.Module):
        """Fails like a full GPU on batches above 3 images."""

        out_dim = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            return x.mean(dim=(2, 3))[:, :2]

    images = np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    blocks = list(features._forward_blocks(Picky(), images, 0, 4, "cpu", 8))
    got = np.concatenate(blocks)
    expected = (images.astype(np.float32) / 127.5 - 1).mean(axis=(1, 2))[:, :2]
    np.testing.assert_allclose(got, expected, atol=1e-6)
