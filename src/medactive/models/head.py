"""Head mode: a dropout + linear classifier trained on cached, frozen features.

This is the classifier every round of the product, the back-test and the experiment runner
fits (:func:`medactive.rounds.classifier.fit_head_classifier`), so it is written for speed at
the sizes a round has (tens to thousands of labels, a few hundred features, a handful of
classes), where per-operation overhead, not arithmetic, sets the time:

* gradients by hand (softmax cross-entropy and a linear layer have closed-form gradients), no
  autograd graph per step;
* Adam on one ``(C, D + 1)`` parameter (weight and bias together: the features carry a
  constant 1 column), with exactly ``torch.optim.Adam``'s update (L2 weight decay added to the
  gradient, bias-corrected moments, ``eps`` outside the square root);
* dropout masks from 16-bit draws of NumPy's PCG64 instead of ``torch.bernoulli_``, which on
  CPU cost 0.5 ms per 256 x 256 batch, two thirds of a step (``benchmarks/bench_head_fit.py``).
  The drop probability is quantised to 1/65536 (0.2 stays 0.199997).

``tests/models/test_head_reference.py`` checks the weights against an autograd +
``torch.optim.Adam`` implementation fed the same masks and batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medactive.errors import MedactiveError

#: Dropout masks are drawn as 16-bit integers: an element is dropped when its draw is below
#: ``round(rate * MASK_LEVELS)``.
MASK_LEVELS = 1 << 16
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@dataclass
class HeadConfig:
    """Hyper-parameters of head mode (dropout + linear on frozen, cached features).

    Same optimiser family as full training; more epochs because each costs microseconds.
    ``batch_size=None`` trains full-batch. ``seed`` fixes the initial weights and the batch
    order (torch) and the dropout masks (NumPy PCG64).
    """

    epochs: int = 200
    lr: float = 1e-2
    weight_decay: float = 1e-4
    dropout: float = 0.2
    batch_size: int | None = 256
    class_balanced: bool = False
    seed: int = 0


def _check(features: np.ndarray, labels: np.ndarray, n_classes: int, cfg: HeadConfig) -> None:
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise MedactiveError(
            f"features {features.shape} and labels {labels.shape} do not match"
        )
    if features.shape[0] == 0:
        raise MedactiveError("cannot train a head on an empty labelled set")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise MedactiveError(f"labels out of range for {n_classes} classes")
    if not np.all(np.isfinite(features)):
        raise MedactiveError("features contain NaN or infinite values")
    if not 0.0 <= cfg.dropout < 1.0:
        raise MedactiveError(f"head dropout must be in [0, 1), got {cfg.dropout}")


def dropout_mask(rng: np.random.Generator, rows: int, cols: int, rate: float) -> np.ndarray:
    """``(rows, cols)`` bool keep-mask of inverted dropout at ``rate``: one 16-bit draw per
    element from ``rng``'s raw bit stream (``ceil(rows * cols / 4)`` 64-bit words), kept when
    it is at least ``round(rate * 65536)``."""
    n = rows * cols
    raw = rng.bit_generator.random_raw(-(-n // 4)).view(np.uint16)[:n]
    return (raw >= round(rate * MASK_LEVELS)).reshape(rows, cols)


def fit_head(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    config: HeadConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train dropout + linear head on cached features (softmax cross-entropy, Adam).

    Args:
        features: ``(M, D)`` float features of the labelled images.
        labels: ``(M,)`` int labels in ``[0, n_classes)``.
        n_classes: ``C``.
        config: hyper-parameters.

    Returns:
        ``(weight (C, D), bias (C,))`` float32 arrays.

    Raises:
        MedactiveError: shapes that do not match, no rows, labels out of range, NaN or infinite
            features, a dropout rate outside ``[0, 1)``.
    """
    cfg = config or HeadConfig()
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    _check(features, labels, n_classes, cfg)
    m, d = features.shape
    order = torch.Generator().manual_seed(cfg.seed)
    masks = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    init = nn.Linear(d, n_classes)  # torch's initialisation, as an nn.Linear head would have
    with torch.no_grad():
        param = torch.cat([init.weight, init.bias[:, None]], dim=1).contiguous()  # (C, D + 1)
    x = torch.cat([torch.from_numpy(features), torch.ones(m, 1)], dim=1)  # (M, D + 1)
    y = torch.from_numpy(labels)
    class_weight = None
    if cfg.class_balanced:
        counts = torch.bincount(y, minlength=n_classes).float()
        class_weight = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp(min=1)),
                                   0.0)
    threshold = round(cfg.dropout * MASK_LEVELS)
    scale = MASK_LEVELS / (MASK_LEVELS - threshold)  # inverted dropout keeps the expectation
    beta1, beta2 = _ADAM_BETAS
    exp_avg, exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
    bs = m if cfg.batch_size is None else min(cfg.batch_size, m)
    step = 0
    with torch.no_grad():
        for _ in range(cfg.epochs):
            perm = torch.randperm(m, generator=order)
            for start in range(0, m, bs):
                idx = perm[start:start + bs]
                b = idx.shape[0]
                xb = x[idx]  # a copy: dropout may write into it
                if threshold:
                    keep = torch.from_numpy(dropout_mask(masks, b, d, cfg.dropout))
                    xb[:, :d].mul_(keep).mul_(scale)
                # d(loss)/d(logits) of the (weighted) mean cross-entropy: softmax - one-hot
                grad = torch.softmax(xb @ param.t(), dim=1)
                rows = torch.arange(b)
                grad[rows, y[idx]] -= 1.0
                if class_weight is None:
                    grad.div_(b)
                else:
                    w = class_weight[y[idx]]
                    grad.mul_((w / w.sum())[:, None])
                g = grad.t() @ xb  # (C, D + 1): weight and bias gradients together
                step += 1
                g.add_(param, alpha=cfg.weight_decay)
                exp_avg.lerp_(g, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / np.sqrt(1 - beta2 ** step)).add_(_ADAM_EPS)
                param.addcdiv_(exp_avg, denom, value=-cfg.lr / (1 - beta1 ** step))
    out = param.numpy()
    return out[:, :d].astype(np.float32).copy(), out[:, d].astype(np.float32).copy()


def softmax64(logits: np.ndarray) -> np.ndarray:
    """Row softmax of ``(N, C)`` logits in float64 (max-shifted: no overflow)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def head_proba(features: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` float64 of a linear head (dropout off) on ``(N, D)``."""
    return softmax64(np.asarray(features, np.float64) @ np.asarray(weight, np.float64).T + bias)
