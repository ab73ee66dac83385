"""EPIG: expected predictive information gain (Bickford Smith, Kirsch, Farquhar, Gal, Foster and
Rainforth, "Prediction-oriented Bayesian active learning", AISTATS 2023).

``EPIG(x) = E_{x* ~ p*} I(y; y* | x, x*)``: how much the label of a pool image x is expected to
tell about the predictions on target inputs x* — what the information-gain paper's EIG aims at
("information about the predictions on the evaluation set"), computed from posterior samples
instead of one gradient step. With T posterior samples (heads θ_t) and targets m (weights w_m):

    p(y, y*) = mean_t p_t(y | x) p_t(y* | x*_m)
    EPIG(x)  = Σ_m w_m [H(y) + H(y*_m) - H(y, y*_m)]          (nats)

The joint of a chunk of pool images with all targets is one matrix product over t, (n·C, T) @
(T, M·C), so the cost is O(N·M·C²·T) multiply-adds and O(N·M·C²) logarithms, chunked so that
memory stays under ``max_bytes`` (default 256 MB) for any N and M.
"""

from __future__ import annotations

import numpy as np
import torch

from medactive.errors import StrategyError
from medactive.models.device import select_device
from medactive.rng import seed_or_draw
from medactive.strategies.base import RoundView, ScoreStrategy, register_strategy
from medactive.strategies.mcdropout import check_n_samples, check_posterior, posterior_heads
from medactive.strategies.posterior import HeadSamples

TARGETS = ("eval", "pool")
# Pool rows whose sampled probabilities are held at once (T=20, C=8: 84 MB float64).
_POOL_CHUNK = 65536


def _entropy_last(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) over the last axis, 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(dim=-1)


def epig_scores(
    pool_probs: np.ndarray,
    target_probs: np.ndarray,
    target_weights: np.ndarray | None = None,
    *,
    max_bytes: int = 256 * 2**20,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """EPIG of every pool image from sampled predictive probabilities.

    Args:
        pool_probs: ``(T, N, C)`` probabilities of the pool images under T posterior samples.
        target_probs: ``(T, M, C)`` probabilities of the target inputs under the same samples.
        target_weights: optional ``(M,)`` non-negative weights of the targets (normalised to
            sum 1; default uniform), e.g. class-balancing weights.
        max_bytes: bound on the working memory of one chunk (the inputs are not counted):
            256 MB keeps a 100k pool x 2k targets x 8 classes well inside 2 GiB.
        device: torch device (default: CUDA when available).

    Returns:
        ``(N,)`` float64 EPIG in nats (≥ 0 up to rounding; 0 when all samples agree).
    """
    pool = np.asarray(pool_probs)
    targ = np.asarray(target_probs)
    if pool.ndim != 3 or targ.ndim != 3 or pool.shape[0] != targ.shape[0] or (
        pool.shape[2] != targ.shape[2]
    ):
        raise StrategyError(
            f"epig: pool probabilities {pool.shape} and target probabilities {targ.shape} must "
            "be (T, N, C) and (T, M, C) with the same T and C"
        )
    t, n, c = pool.shape
    m = targ.shape[1]
    if m == 0:
        raise StrategyError("epig: no target inputs")
    if not (np.all(np.isfinite(pool)) and np.all(np.isfinite(targ))):
        raise StrategyError("epig: probabilities contain NaN or infinite values")
    if target_weights is None:
        w_np = np.full(m, 1.0 / m)
    else:
        w_np = np.asarray(target_weights, np.float64)
        if w_np.shape != (m,) or np.any(w_np < 0) or not np.isfinite(w_np).all() or (
            w_np.sum() <= 0
        ):
            raise StrategyError(f"epig: target_weights must be {m} non-negative numbers, not all 0")
        w_np = w_np / w_np.sum()
    dev = select_device(device)
    f64 = torch.float64
    targ_t = torch.as_tensor(targ, dtype=f64, device=dev)  # (T, M, C)
    w = torch.as_tensor(w_np, device=dev)
    h_targ = float((_entropy_last(targ_t.mean(dim=0)) * w).sum())  # Σ_m w_m H(y*_m)
    targ_flat = targ_t.reshape(t, m * c) / t  # (T, M·C), the 1/T folded in
    # One chunk holds the (rows, C, M_chunk, C) joint plus one temporary of the same size.
    per_pair = 2 * 8 * c * c
    m_chunk = max(1, min(m, max_bytes // (per_pair * 64)))
    rows = max(1, min(n, max_bytes // (per_pair * m_chunk)))
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, rows):
        p = torch.as_tensor(pool[:, start : start + rows], dtype=f64, device=dev)  # (T, r, C)
        r = p.shape[1]
        h_pool = _entropy_last(p.mean(dim=0))  # (r,)
        left = p.permute(1, 2, 0).reshape(r * c, t)  # (r·C, T)
        h_joint = torch.zeros(r, dtype=f64, device=dev)
        for m0 in range(0, m, m_chunk):
            m1 = min(m, m0 + m_chunk)
            joint = (left @ targ_flat[:, m0 * c : m1 * c]).reshape(r, c, m1 - m0, c)
            ent = -torch.special.xlogy(joint, joint).sum(dim=(1, 3))  # (r, M_chunk)
            h_joint += ent @ w[m0:m1]
        out[start : start + r] = (h_pool + h_targ - h_joint).cpu().numpy()
    return out


def balanced_target_weights(labels: np.ndarray) -> np.ndarray:
    """``(M,)`` weights ``1 / (C_present · n_{y_m})``: every present class weighs the same."""
    labels = np.asarray(labels, np.int64)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / (counts.size * counts[inverse])


@register_strategy("epig")
class EPIG(ScoreStrategy):
    """EPIG with targets from the evaluation set (or the pool), posterior from MC dropout or a
    last-layer Laplace approximation.

    Args:
        targets: ``"eval"`` — the view's evaluation (validation) images, as the information-gain
            paper's D^eval; ``"pool"`` — the unlabelled pool itself (label-free: p*(x) = pool).
        balanced: weigh every class equally among the targets (evaluation labels; predicted
            classes for pool targets) — the "adapted" idea of AEIG.
        n_targets: targets drawn per round (default 100, the EPIG authors' default; a balanced
            draw takes the same number per class); None = all of them, weighted.
        posterior: ``"dropout"`` (default) or ``"laplace"``.
        n_samples: posterior samples T (default 20, as ``bald``).
        prior_precision: Laplace prior precision τ (None = evidence fixed point).
        seed: seed of targets and samples (None: drawn from the round's rng).
    """

    default_balanced = False

    def __init__(self, targets: str = "eval", balanced: bool | None = None,
                 n_targets: int | None = 100, posterior: str = "dropout", n_samples: int = 20,
                 prior_precision: float | None = None, seed: int | None = None) -> None:
        self.targets = targets
        self.balanced = self.default_balanced if balanced is None else balanced
        self.n_targets = n_targets
        self.posterior = posterior
        self.n_samples = n_samples
        self.prior_precision = prior_precision
        self.seed = seed

    def check_params(self) -> None:
        check_n_samples(self.n_samples)
        check_posterior(self.posterior, self.prior_precision)
        if self.targets not in TARGETS:
            raise StrategyError(f"targets must be one of {TARGETS}, got {self.targets!r}")
        if self.n_targets is not None and (
            not isinstance(self.n_targets, (int, np.integer)) or self.n_targets < 1
        ):
            raise StrategyError(f"n_targets must be a positive integer or None, got "
                                f"{self.n_targets!r}")

    def _targets(self, view: RoundView, heads: HeadSamples, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(T, M, C)`` target probabilities and optional weights."""
        if self.targets == "eval":
            if view.val_features is None or view.val_labels is None:
                raise StrategyError(f"{self.name} with targets='eval' needs validation features "
                                    "and labels in the round view")
            feats, labels = view.val_features, np.asarray(view.val_labels)
        else:
            feats = view.features[view.pool_indices]
            labels = view.pool_probabilities.argmax(axis=1)  # pseudo-labels, label-free
        k = feats.shape[0]
        if self.n_targets is None or (self.n_targets >= k and not self.balanced):
            weights = balanced_target_weights(labels) if self.balanced else None
            return heads.probabilities(feats), weights
        if self.balanced:  # equal draws per present class (with replacement when it is small)
            classes = np.unique(labels)
            per = max(1, int(np.ceil(self.n_targets / classes.size)))
            pick = np.concatenate([
                rng.choice(np.flatnonzero(labels == cl), per,
                           replace=bool((labels == cl).sum() < per)) for cl in classes])
        else:
            pick = rng.choice(k, int(self.n_targets), replace=False)
        return heads.probabilities(feats[np.sort(pick)]), None

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        self.check_params()
        # One generator for samples and targets: the seed if given, else one draw from the round.
        local = np.random.default_rng(seed_or_draw(self.seed, rng))
        heads = posterior_heads(view, self.posterior, int(self.n_samples), None, local,
                                self.prior_precision)
        targ, weights = self._targets(view, heads, local)
        idx = view.pool_indices
        out = np.empty(idx.size, dtype=np.float64)
        # Pool chunks bound the (T, rows, C) sampled probabilities for huge pools.
        for start in range(0, idx.size, _POOL_CHUNK):
            rows = idx[start : start + _POOL_CHUNK]
            out[start : start + rows.size] = epig_scores(
                heads.probabilities(view.features[rows]), targ, weights)
        return out


@register_strategy("epig-balanced")
class BalancedEPIG(EPIG):
    """:class:`EPIG` with class-balanced targets (``balanced=True`` by default)."""

    default_balanced = True
