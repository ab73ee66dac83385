"""Backbones, the classifier, supervised training on real BloodMNIST, head mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.errors import ConfigError, MedactiveError
from medactive.metrics import macro_auc
from medactive.models import (
    HeadConfig,
    TrainConfig,
    build_backbone,
    build_classifier,
    extract_features,
    fit_classifier,
    fit_head,
    head_proba,
    images_to_tensor,
    predict_proba,
)


@pytest.mark.parametrize(
    ("name", "channels", "size", "dim"),
    [("compact", 3, 28, 256), ("compact", 1, 64, 256), ("resnet18", 3, 28, 512),
     ("resnet18", 1, 128, 512)],
)
def test_backbone_shapes(name, channels, size, dim):
    net = build_backbone(name, channels, size).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, channels, size, size))
    assert out.shape == (2, dim) and net.out_dim == dim


def test_resnet_stem_follows_image_size():
    small = build_backbone("resnet18", 3, 28)
    large = build_backbone("resnet18", 3, 224)
    assert isinstance(small.stem[0], torch.nn.Conv2d) and small.stem[0].kernel_size == (3, 3)
    assert large.stem[0].kernel_size == (7, 7)


def test_unknown_backbone_and_pretrained_errors():
    with pytest.raises(ConfigError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")
    with pytest.raises(ConfigError, match="no pretrained weights"):
        build_backbone("compact", pretrained=True)


def test_images_to_tensor_normalises():
    img = np.array([[[[0, 255, 128]]]], dtype=np.uint8)
    t = images_to_tensor(img)
    assert t.shape == (1, 3, 1, 1)
    assert torch.allclose(t.flatten(), torch.tensor([-1.0, 1.0, 128 / 255 * 2 - 1]), atol=1e-6)


def test_classifier_head_is_the_last_layer():
    model = build_classifier("compact", n_classes=5, dropout=0.2).eval()
    x = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        h = model.features(x)
        logits = model(x)
    w, b = model.head_arrays()
    assert w.shape == (5, 256) and b.shape == (5,)
    assert np.allclose(logits.numpy(), h.numpy() @ w.T + b, atol=1e-5)
    assert model.dropout_p == 0.2


def test_compact_cnn_reaches_auc_090_on_real_bloodmnist(blood_small):
    """Issue 2's bar: a compact CNN, a few epochs, 2,000 real training images -> AUC >= 0.90."""
    model = build_classifier("compact", blood_small.n_classes)
    history = fit_classifier(model, blood_small.train, blood_small.val,
                             TrainConfig(epochs=4, seed=0, progress=False))
    assert len(history.train_loss) == 4 and history.train_loss[-1] < history.train_loss[0]
    proba = predict_proba(model, blood_small.test.images)
    assert np.allclose(proba.sum(1), 1.0)
    auc = macro_auc(blood_small.test.labels, proba)
    assert auc >= 0.90, auc


def test_training_is_reproducible_and_early_stopping_restores_best(blood_small):
    sub = blood_small.train.subset(np.arange(300))
    val = blood_small.val.subset(np.arange(200))
    cfg = TrainConfig(epochs=3, seed=5, progress=False, early_stopping_patience=1)
    m1, m2 = build_classifier("compact", 8), build_classifier("compact", 8)
    torch.manual_seed(0)
    m1.load_state_dict(m2.state_dict())
    h1 = fit_classifier(m1, sub, val, cfg)
    h2 = fit_classifier(m2, sub, val, cfg)
    assert h1.train_loss == h2.train_loss and h1.val_auc == h2.val_auc
    assert h1.val_auc[h1.best_epoch] == max(h1.val_auc)
    p = predict_proba(m1, val.images)
    assert macro_auc(val.labels, p) == pytest.approx(max(h1.val_auc), abs=1e-6)


def test_training_rejects_unknown_labels(blood_small):
    ds = blood_small.train.subset(np.arange(10))
    ds = ds.with_labels(np.full(10, -1))
    with pytest.raises(MedactiveError, match="unknown labels"):
        fit_classifier(build_classifier("compact", 8), ds, config=TrainConfig(epochs=1))


def test_head_mode_on_cached_features(blood_small):
    """Head mode: frozen backbone features cached once, dropout+linear trained in seconds."""
    torch.manual_seed(0)
    backbone = build_backbone("compact")
    train_f = extract_features(backbone, blood_small.train.images, progress=False)
    test_f = extract_features(backbone, blood_small.test.images, progress=False)
    assert train_f.shape == (2000, 256) and train_f.dtype == np.float32
    # Features are deterministic in eval mode (no dropout/BN updates).
    assert np.array_equal(train_f[:50], extract_features(backbone, blood_small.train.images[:50],
                                                         progress=False))
    w, b = fit_head(train_f, blood_small.train.labels, 8, HeadConfig(epochs=100, seed=0))
    auc = macro_auc(blood_small.test.labels, head_proba(test_f, w, b))
    # Even a random-init frozen CNN gives linearly useful features on BloodMNIST.
    assert auc > 0.75, auc
    w2, b2 = fit_head(train_f, blood_small.train.labels, 8, HeadConfig(epochs=100, seed=0))
    assert np.array_equal(w, w2) and np.array_equal(b, b2)


def test_head_mode_input_errors():
    f = np.zeros((4, 3), np.float32)
    with pytest.raises(MedactiveError, match="do not match"):
        fit_head(f, np.zeros(3, np.int64), 2)
    with pytest.raises(MedactiveError, match="out of range"):
        fit_head(f, np.array([0, 1, 2, 0]), 2)
    f[0, 0] = np.nan
    with pytest.raises(MedactiveError, match="NaN"):
        fit_head(f, np.array([0, 1, 1, 0]), 2)
