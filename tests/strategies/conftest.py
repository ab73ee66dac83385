"""Small synthetic round views shared by the strategy tests (CPU, milliseconds to build)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.models.backbones import CompactCNN
from medactive.models.classifier import Classifier
from medactive.strategies import RoundView, build_round_view

N_TRAIN, N_VAL, N_CLASSES, IMAGE = 48, 24, 4, 16


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Run this directory's tests on one torch thread: on the small shared CI machine, two
    spinning threads for millisecond-sized ops were 5-10x slower than one. Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model() -> Classifier:
    """An untrained classifier with a very small CNN backbone (deterministic weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Classifier(CompactCNN(3, widths=(8, 16)), N_CLASSES, dropout=0.2)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_view(tiny_model: Classifier) -> RoundView:
    """A full view built by :func:`build_round_view` on random 16x16 images, with images and
    model (so VAAL and Consistency run) and simulated true labels."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (N_TRAIN, IMAGE, IMAGE, 3), dtype=np.uint8)
    val_images = rng.integers(0, 256, (N_VAL, IMAGE, IMAGE, 3), dtype=np.uint8)
    truth = rng.integers(0, N_CLASSES, N_TRAIN)
    mask = np.zeros(N_TRAIN, bool)
    mask[:8] = True
    return build_round_view(
        tiny_model, images, mask, truth, val_images, rng.integers(0, N_CLASSES, N_VAL),
        device="cpu", include_images=True, true_labels=truth,
    )
