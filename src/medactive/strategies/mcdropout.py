"""MC-dropout strategies (Gal et al. 2017; Kirsch et al. 2019) from cached features only.

The classifier's only dropout sits in front of the linear head, so a stochastic forward pass is
``softmax((h ⊙ m_t) Wᵀ + b)`` with an inverted-dropout mask ``m_t ∈ {0, 1/(1-p)}^D`` (exactly
what ``nn.Dropout`` does in train mode). Pass t samples one mask and applies it to every pool
image — one sampled network ω_t per pass, as BatchBALD's joint entropies require — so all T
passes are one matmul against the T masked heads ``W diag(m_t)``: no backbone re-run.
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr

from medactive.errors import StrategyError
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    Strategy,
    check_budget,
    iter_pool_chunks,
    register_strategy,
    top_k_with_random_ties,
)


def dropout_masks(n_samples: int, dim: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """``(T, D)`` float32 inverted-dropout masks: 0 with probability p, else ``1/(1-p)``."""
    if not 0.0 <= p < 1.0:
        raise StrategyError(f"dropout probability must be in [0, 1), got {p}")
    keep = rng.random((n_samples, dim)) >= p
    return (keep / (1.0 - p)).astype(np.float32)


def view_dropout_masks(
    view: RoundView, n_samples: int, seed: int | None, rng: np.random.Generator | None
) -> np.ndarray:
    """``(T, D)`` masks for ``view``'s head input at its dropout rate.

    Drawn from ``rng`` (the round's generator) unless ``seed`` fixes them; with neither, from
    seed 0 — so a strategy's ``score(view)`` alone is deterministic.
    """
    if seed is not None or rng is None:
        rng = np.random.default_rng(0 if seed is None else seed)
    return dropout_masks(int(n_samples), view.features.shape[1], view.dropout_p, rng)


def check_n_samples(n_samples: object) -> None:
    """Raise :class:`StrategyError` unless ``n_samples`` is a positive integer."""
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) \
            or n_samples < 1:
        raise StrategyError(f"n_samples must be a positive integer, got {n_samples!r}")


def mc_probabilities(
    features: np.ndarray, weight: np.ndarray, bias: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """``(n, T, C)`` float64 softmax outputs of the T masked heads on ``(n, D)`` features."""
    t, c = masks.shape[0], weight.shape[0]
    heads = (weight[None, :, :] * masks[:, None, :]).reshape(t * c, -1)  # (T*C, D)
    # float32 matmul (the features are float32 anyway), float64 softmax and entropies.
    logits = (features.astype(np.float32) @ heads.T.astype(np.float32)).astype(np.float64)
    logits = logits.reshape(-1, t, c) + bias[None, None, :].astype(np.float64)
    logits -= logits.max(axis=2, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=2, keepdims=True)


class _MCDropout(ScoreStrategy):
    """Shared parameters: ``n_samples`` T (default 20) and ``seed`` of the masks (None: drawn
    from the round's rng; ``score(view)`` without a generator then uses seed 0)."""

    def __init__(self, n_samples: int = 20, seed: int | None = None) -> None:
        self.n_samples = n_samples
        self.seed = seed

    def check_params(self) -> None:
        check_n_samples(self.n_samples)

    def _from_probs(self, probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        self.check_params()
        masks = view_dropout_masks(view, int(self.n_samples), self.seed, rng)
        out = np.empty(view.pool_indices.size, dtype=np.float64)
        # 8192 images x T x C float64 at a time keeps memory flat for any pool size.
        for start, feats in iter_pool_chunks(view, 8192):
            probs = mc_probabilities(feats, view.weight, view.bias, masks)
            out[start : start + feats.shape[0]] = self._from_probs(probs)
        return out


@register_strategy("mc-entropy")
class MCEntropy(_MCDropout):
    """Entropy of the MC-averaged prediction ``H[mean_t p_t]``."""

    def _from_probs(self, probs: np.ndarray) -> np.ndarray:
        return entr(probs.mean(axis=1)).sum(axis=1)


@register_strategy("bald")
class BALD(_MCDropout):
    """BALD mutual information ``H[mean_t p_t] - mean_t H[p_t]`` (Houlsby et al. 2011)."""

    def _from_probs(self, probs: np.ndarray) -> np.ndarray:
        return entr(probs.mean(axis=1)).sum(axis=1) - entr(probs).sum(axis=2).mean(axis=1)


@register_strategy("batchbald")
class BatchBALD(Strategy):
    """BatchBALD (Kirsch et al. 2019): greedily add the image maximising the mutual information
    between the batch's joint labels and the model, ``H(y_1..y_k, y_x) - Σ E_t H(y_i | ω_t)``.

    Joint entropies are exact while the batch has at most ``max_configs`` label configurations
    (C^k); beyond that ``max_configs`` configurations are sampled ancestrally (pick ω_t, then each
    label from p_t) and the entropy is the importance-weighted estimate of the paper.

    Args:
        n_samples: T dropout masks (default 20). max_configs: see above (default 512).
        seed: mask/config seed; None draws from the round's rng.
    Cost per greedy step: O(max_configs · T · N · C).
    """

    def __init__(
        self, n_samples: int = 20, max_configs: int = 512, seed: int | None = None
    ) -> None:
        self.n_samples = n_samples
        self.max_configs = max_configs
        self.seed = seed

    def check_params(self) -> None:
        check_n_samples(self.n_samples)
        if not isinstance(self.max_configs, (int, np.integer)) or self.max_configs < 1:
            raise StrategyError(f"max_configs must be a positive integer, got {self.max_configs!r}")

    def rank(
        self, view: RoundView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Greedy picks; the score of a pick is the batch's mutual-information gain it added."""
        check_budget(view, budget)
        self.check_params()
        masks = view_dropout_masks(view, int(self.n_samples), self.seed, rng)
        local = rng if self.seed is None else np.random.default_rng(self.seed + 1)
        probs = np.concatenate(
            [mc_probabilities(f, view.weight, view.bias, masks) for _, f in iter_pool_chunks(view)]
        )  # (N, T, C)
        n, t, c = probs.shape
        cond = entr(probs).sum(axis=2).mean(axis=1)  # E_t H(y_x | ω_t), (N,)
        by_t = probs.transpose(1, 0, 2).reshape(t, n * c)  # (T, N*C)
        table = np.ones((1, t))  # exact: P(config s | ω_t), rows = configurations
        sampled_t: np.ndarray | None = None  # sampled mode: latent ω index of each config
        log_scale = np.zeros(1)
        available = np.ones(n, bool)
        chosen: list[int] = []
        gains: list[float] = []
        batch_mi = 0.0  # mutual information of the batch chosen so far
        batch_cond = 0.0  # Σ over the chosen images of E_t H(y_i | ω_t)
        for _ in range(budget):
            joint = self._joint_entropy(table, by_t, n, c, sampled_t is not None, log_scale)
            cand = np.flatnonzero(available)
            # The chosen images' conditional entropies are the same for every candidate, so the
            # argmax only needs the candidate's own term.
            mi = joint[cand] - cond[cand]
            best_pos = int(top_k_with_random_ties(mi, 1, local)[0])
            best = int(cand[best_pos])
            new_mi = float(mi[best_pos]) - batch_cond
            gains.append(new_mi - batch_mi)
            batch_mi, batch_cond = new_mi, batch_cond + float(cond[best])
            chosen.append(best)
            available[best] = False
            px = probs[best].T  # (C, T)
            if sampled_t is None and table.shape[0] * c <= self.max_configs:
                table = (table[:, None, :] * px[None, :, :]).reshape(-1, t)
                log_scale = np.zeros(table.shape[0])
                continue
            if sampled_t is None:  # switch to sampled configurations, drawn from the exact table
                sampled_t = local.integers(0, t, self.max_configs)
                col = table[:, sampled_t]
                cdf = np.cumsum(col / col.sum(axis=0, keepdims=True), axis=0)
                rows = (cdf < local.random(self.max_configs)[None, :]).sum(axis=0)
                table = table[np.minimum(rows, table.shape[0] - 1)]
                log_scale = np.zeros(self.max_configs)
            # Extend each sampled configuration with y_best ~ p_{t_m}(best) (ancestral sampling).
            cdf = np.cumsum(px[:, sampled_t], axis=0)
            y = np.minimum((cdf < local.random(sampled_t.size)[None, :]).sum(axis=0), c - 1)
            table = table * px[y, :]
            # Rescale rows to avoid underflow; the estimator tracks the scale in log_scale.
            scale = table.max(axis=1, keepdims=True)
            table /= scale
            log_scale += np.log(scale[:, 0])
        return view.pool_indices[np.array(chosen, dtype=np.int64)], np.asarray(gains)

    @staticmethod
    def _joint_entropy(
        table: np.ndarray, by_t: np.ndarray, n: int, c: int, sampled: bool, log_scale: np.ndarray
    ) -> np.ndarray:
        """``(N,)`` joint entropy of the batch's labels and each candidate's label."""
        s, t = table.shape
        out = np.empty(n, dtype=np.float64)
        step = max(1, (2**22) // (s * c))  # bound the (S, chunk, C) temporary
        for a in range(0, n, step):
            q = (table @ by_t[:, a * c : (a + step) * c] / t).reshape(s, -1, c)
            if not sampled:
                out[a : a + step] = entr(q).sum(axis=(0, 2))
            else:
                p_cfg = table.mean(axis=1)[:, None]  # (M, 1): p(s_m) up to exp(log_scale)
                logq = np.log(np.maximum(q, 1e-300)) + log_scale[:, None, None]
                out[a : a + step] = -((q / p_cfg[:, :, None]) * logq).sum(axis=2).mean(axis=0)
        return out
