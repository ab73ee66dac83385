"""Head mode's hand-written gradients and Adam against an independent reference: autograd,
``nn.functional.cross_entropy`` and ``torch.optim.Adam`` on an ``nn.Linear``, fed the same
batches (torch's seeded ``randperm``) and the same dropout masks (16-bit PCG64 draws, written
out again here). Nothing is imported from :mod:`medactive.models.head` but the function under
test and its config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medactive.errors import MedactiveError
from medactive.models import HeadConfig, fit_head


def _reference(x: np.ndarray, y: np.ndarray, c: int, cfg: HeadConfig) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    order = torch.Generator().manual_seed(cfg.seed)
    masks = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    m, d = x.shape
    head = nn.Linear(d, c)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                           foreach=False)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    weight = None
    if cfg.class_balanced:
        counts = np.bincount(y, minlength=c).astype(np.float64)
        weight = torch.tensor([m / (c * n) if n else 0.0 for n in counts], dtype=torch.float32)
    cut = round(cfg.dropout * 65536)
    bs = m if cfg.batch_size is None else min(cfg.batch_size, m)
    for _ in range(cfg.epochs):
        perm = torch.randperm(m, generator=order)
        for start in range(0, m, bs):
            idx = perm[start:start + bs]
            xb = xt[idx]
            if cut:
                words = masks.bit_generator.random_raw((len(idx) * d + 3) // 4)
                draws = np.frombuffer(words.tobytes(), dtype=np.uint16)[:len(idx) * d]
                keep = torch.from_numpy((draws >= cut).reshape(len(idx), d))
                xb = xb * keep / (1 - cut / 65536)
            loss = nn.functional.cross_entropy(head(xb), yt[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.weight.detach().numpy(), head.bias.detach().numpy()


@pytest.mark.parametrize("m, d, c, cfg", [
    (40, 16, 3, HeadConfig(epochs=30, seed=1)),
    (300, 32, 5, HeadConfig(epochs=20, batch_size=64, seed=2)),  # 64 does not divide 300
    (50, 8, 4, HeadConfig(epochs=40, batch_size=None, dropout=0.0, seed=3)),
    (120, 24, 4, HeadConfig(epochs=25, class_balanced=True, weight_decay=1e-2, seed=4)),
    (30, 10, 2, HeadConfig(epochs=50, lr=0.1, dropout=0.5, seed=5)),
])
def test_fit_head_matches_autograd_and_torch_adam(m: int, d: int, c: int, cfg: HeadConfig
                                                  ) -> None:
    rng = np.random.default_rng(m)
    x = rng.standard_normal((m, d)).astype(np.float32)
    y = rng.integers(0, c, m)
    y[:c] = np.arange(c)
    if cfg.class_balanced:
        y[c:] = np.where(rng.random(m - c) < 0.7, 0, y[c:])  # imbalanced on purpose
    w, b = fit_head(x, y, c, cfg)
    w_ref, b_ref = _reference(x, y, c, cfg)
    assert w.shape == (c, d) and b.shape == (c,) and w.dtype == np.float32
    np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b, b_ref, rtol=1e-4, atol=1e-5)


def test_dropout_rate_outside_its_range_is_refused() -> None:
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(MedactiveError, match="dropout"):
        fit_head(x, np.array([0, 1, 0, 1]), 2, HeadConfig(dropout=1.0))
