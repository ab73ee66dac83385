"""Information-gain acquisition (EIG, AEIG, UIG, CFIG; Mehta et al., Algorithm 1), exact.

For a linear head θ = (W, b) on frozen features, ``H(θ)`` is the mean Shannon entropy (nats) of
``softmax(W h_e + b)`` over the evaluation (validation) images; ``H1 = H(θ)``. For a pool image
``a`` and a class ``c``, ``θ'(a, c)`` is one plain SGD step (step size η, weight decay λ on W only)
on the cross-entropy of ``(h_a, c)`` and ``H2(a, c) = H(θ'(a, c))``. The score is
``H1 - Σ_c w_c(a) H2(a, c)`` with weights ``p(c|x_a)`` (EIG), ``p(c|x_a) π_c`` (AEIG, the
paper's unnormalised Eq. 2), ``1/C`` (UIG) or ``π_c`` (CFIG); π = validation class shares.

Closed form used by :func:`info_gain_scores`: the gradient of the loss is ``g = p_a - e_c`` for
b and ``g h_aᵀ`` for W, so every evaluation logit vector moves to

    z'_e = u_e - δ_ea (p_a - e_c),   u_e = z_e - ηλ W h_e,   δ_ea = η (⟨h_e, h_a⟩ + 1).

All N×C candidate heads therefore come from one Gram product; the C candidates of one ``(e, a)``
share ``v = u_e - δ p_a`` and differ only by ``+δ`` on logit c. With σ = softmax(v), H0 its
entropy and k = expm1(δ), the entropy after bumping logit c is exactly

    H'(c) = log1p(σ_c k) + (H0 - σ_c (k log σ_c + (k + 1) δ)) / (1 + σ_c k),

so each pair costs O(C) after the O(D) Gram entry: O(N·K·(D + C)) in total, chunked over pool
and evaluation rows so memory is bounded for any N.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from medactive.errors import StrategyError
from medactive.models.device import select_device
from medactive.strategies.base import RoundView, ScoreStrategy, register_strategy

VARIANTS = ("eig", "aeig", "uig", "cfig")

#: Default SGD step size η of the one-step head update. See docs/strategies.md: with post-ReLU
#: 512-d features (‖h‖² ≈ 10²) a step of 1e-3 moves the candidate's own logits by ≈ 0.1, the same
#: order as one Adam step of the paper's training recipe (lr 5e-4 on every weight), i.e. "one more
#: labelled image" rather than a jump; EIG's signal is O(η²) and stays ≫ float64 rounding.
DEFAULT_STEP_SIZE = 1e-3

# Elements (K_chunk x P_chunk x C) of one float64 working tensor: 2**18 * 8 B = 2 MB, roughly
# cache sized so the ~15 elementwise passes stay cache friendly (measured fastest of 2**16..2**20).
_CHUNK_ELEMENTS = 2**18
# Beyond this |logit| we subtract the row max before exp (float64 exp overflows at ~709).
_SAFE_LOGIT = 300.0


def _validate(
    pool_features: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    variant: str,
    step_size: float,
    weight_decay: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if variant not in VARIANTS:
        raise StrategyError(f"unknown info-gain variant {variant!r}; known: {', '.join(VARIANTS)}")
    if not (np.isfinite(step_size) and step_size > 0):
        raise StrategyError(f"step_size must be a positive finite number, got {step_size!r}")
    if not (np.isfinite(weight_decay) and weight_decay >= 0):
        raise StrategyError(f"weight_decay must be >= 0, got {weight_decay!r}")
    weight = np.asarray(weight)
    bias = np.asarray(bias)
    eval_features = np.asarray(eval_features)
    eval_labels = np.asarray(eval_labels, dtype=np.int64)
    if weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise StrategyError(f"head weight {weight.shape} and bias {bias.shape} do not match")
    c, d = weight.shape
    if pool_features.ndim != 2 or pool_features.shape[1] != d:
        raise StrategyError(f"pool features {pool_features.shape} do not match head dim {d}")
    if eval_features.ndim != 2 or eval_features.shape[1] != d or eval_features.shape[0] == 0:
        raise StrategyError(f"evaluation features {eval_features.shape} must be (K >= 1, {d})")
    if eval_labels.shape != (eval_features.shape[0],):
        raise StrategyError(
            f"evaluation labels {eval_labels.shape} do not match {eval_features.shape[0]} images"
        )
    if eval_labels.min() < 0 or eval_labels.max() >= c:
        raise StrategyError(f"evaluation labels out of range for {c} classes")
    return pool_features, eval_features, eval_labels, weight, bias


def class_prior(eval_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C,)`` share π_c of evaluation labels equal to c (sums to 1)."""
    counts = np.bincount(np.asarray(eval_labels, np.int64), minlength=n_classes)
    return counts / counts.sum()


def candidate_weights(variant: str, proba: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """``(P, C)`` weight of ``H2(a, c)`` in the score, for ``(P, C)`` pool probabilities."""
    if variant == "eig":
        return proba
    if variant == "aeig":
        return proba * prior[None, :]
    if variant == "uig":
        return np.full_like(proba, 1.0 / proba.shape[1])
    return np.broadcast_to(prior[None, :], proba.shape).copy()  # cfig


def _mean_entropy(logits: torch.Tensor) -> float:
    logp = torch.log_softmax(logits, dim=-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


def info_gain_scores(
    pool_features: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    variant: str = "aeig",
    step_size: float = DEFAULT_STEP_SIZE,
    weight_decay: float = 0.0,
) -> np.ndarray:
    """Exact information-gain scores via the closed-form one-step update (fast path).

    Args:
        pool_features: ``(N, D)`` features of the candidate images. float64 input gives a
            float64 Gram product; float32 input a float32 one (the features carry no more
            precision than that); all entropy arithmetic is float64 either way.
        eval_features: ``(K, D)`` evaluation (validation) features.
        eval_labels: ``(K,)`` int labels in ``[0, C)``, used only for π.
        weight: ``(C, D)`` head weight. bias: ``(C,)`` head bias.
        variant: ``"eig"``, ``"aeig"``, ``"uig"`` or ``"cfig"``.
        step_size: SGD step size η. weight_decay: λ, applied to W only.

    Returns:
        ``(N,)`` float64 scores, higher = acquire first. Uses CUDA when available.
    """
    pool_features = np.asarray(pool_features)
    return info_gain_scores_rows(
        pool_features, None, eval_features, eval_labels, weight, bias,
        variant=variant, step_size=step_size, weight_decay=weight_decay,
    )


def info_gain_scores_rows(
    features: np.ndarray,
    rows: np.ndarray | None,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    variant: str = "aeig",
    step_size: float = DEFAULT_STEP_SIZE,
    weight_decay: float = 0.0,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """:func:`info_gain_scores` for ``features[rows]`` (all rows if None) without copying them.

    Lets a strategy score a huge pool straight from ``view.features``; chunk copies only.
    """
    features, eval_features, eval_labels, weight, bias = _validate(
        features, eval_features, eval_labels, weight, bias, variant, step_size, weight_decay
    )
    dev = select_device(device)
    f64 = torch.float64
    gram_dtype = f64 if features.dtype == np.float64 else torch.float32
    c = weight.shape[0]
    w = torch.as_tensor(np.asarray(weight, np.float64), device=dev)
    b = torch.as_tensor(np.asarray(bias, np.float64), device=dev)
    he64 = torch.as_tensor(np.asarray(eval_features, np.float64), device=dev)
    he = he64.to(gram_dtype)
    k_eval = he.shape[0]
    z_eval = he64 @ w.T + b  # (K, C)
    h1 = _mean_entropy(z_eval)
    # Weight decay shrinks W the same way for every candidate: fold it into the base logits.
    u = z_eval - (step_size * weight_decay) * (z_eval - b)
    u_absmax = float(u.abs().max())
    prior = class_prior(eval_labels, c)

    rows_all = np.arange(features.shape[0]) if rows is None else np.asarray(rows, np.int64)
    n = rows_all.size
    out = np.empty(n, dtype=np.float64)
    p_chunk = max(1, min(n, 4096))
    k_chunk = max(1, min(k_eval, _CHUNK_ELEMENTS // (c * min(p_chunk, 256))))
    p_inner = max(1, min(p_chunk, _CHUNK_ELEMENTS // (c * k_chunk)))
    for start in range(0, n, p_chunk):
        ha_np = features[rows_all[start : start + p_chunk]]
        ha = torch.as_tensor(np.ascontiguousarray(ha_np), device=dev)
        proba = torch.softmax(ha.to(f64) @ w.T + b, dim=-1)  # (P, C)
        wts = torch.as_tensor(candidate_weights(variant, proba.cpu().numpy(), prior), device=dev)
        acc = torch.zeros(ha.shape[0], dtype=f64, device=dev)
        for i0 in range(0, ha.shape[0], p_inner):
            sl = slice(i0, i0 + p_inner)
            for e0 in range(0, k_eval, k_chunk):
                acc[sl] += _weighted_h2_sum(
                    he[e0 : e0 + k_chunk], ha[sl].to(gram_dtype), u[e0 : e0 + k_chunk],
                    proba[sl], wts[sl], step_size, u_absmax,
                )
        out[start : start + ha.shape[0]] = h1 - (acc / k_eval).cpu().numpy()
    return out


def _weighted_h2_sum(
    he: torch.Tensor,
    ha: torch.Tensor,
    u: torch.Tensor,
    proba: torch.Tensor,
    wts: torch.Tensor,
    eta: float,
    u_absmax: float,
) -> torch.Tensor:
    """``(P,)`` Σ_e Σ_c w_c(a) H'(e, a, c) for eval rows ``he (K, D)``, pool rows ``ha (P, D)``."""
    delta = (he @ ha.T).to(torch.float64).add_(1.0).mul_(eta)  # (K, P)
    dmax = float(delta.abs().max())
    if dmax > 700.0:
        raise StrategyError(
            f"step_size too large: one SGD step moves a logit by {dmax:.3g} (> 700, exp overflow)"
        )
    v = torch.addcmul(u[:, None, :], delta[:, :, None], proba[None, :, :], value=-1.0)
    if float(delta.min()) < -0.5:
        # 1 + σ_c k with k = expm1(δ) < -0.4 cancels when σ_c ≈ 1 (a dominant class pushed far
        # down), and the rank-one formula loses digits. Only negative Gram entries (features
        # with signed inner products) and large steps get here: use each candidate's own
        # stable log-softmax instead, O(C²) per pair for this chunk only.
        eye = torch.eye(v.shape[-1], dtype=v.dtype, device=v.device)
        cand = v[:, :, None, :] + delta[:, :, None, None] * eye  # (K, P, C, C)
        logq = torch.log_softmax(cand, dim=-1)
        hc = -(logq.exp() * logq).sum(dim=-1)  # (K, P, C)
        return (hc.sum(dim=0) * wts).sum(dim=1)
    if u_absmax + dmax < _SAFE_LOGIT:  # no overflow possible: skip the max subtraction
        ev = v.exp()
    else:
        v.sub_(v.amax(dim=-1, keepdim=True))
        ev = v.exp()
    z = ev.sum(dim=-1, keepdim=True)
    sigma = ev.div_(z)  # (K, P, C), reuses ev's memory
    logsig = v.sub_(z.log_())  # log softmax without log(σ) underflow, reuses v
    h0 = -(sigma * logsig).sum(dim=-1, keepdim=True)  # (K, P, 1)
    k = torch.expm1(delta)[:, :, None]  # (K, P, 1), shared by the C candidates
    # inner = σ_c (k log σ_c + (k + 1) δ), computed in place on logsig.
    inner = logsig.mul_(k).add_((k + 1.0) * delta[:, :, None]).mul_(sigma)
    denom = sigma.mul_(k).add_(1.0)  # 1 + σ_c k, in place on sigma (no longer needed)
    # H'(c) = log(1 + σ_c k) + (H0 - inner) / (1 + σ_c k); log of the stored sum rather than
    # log1p costs at most one ulp of 1, i.e. ~1e-16 absolute, like every other rounding here.
    hc = inner.neg_().add_(h0).div_(denom).add_(denom.log_())
    # Sum over evaluation images first, then weight: (P, C) weights touch a small tensor only.
    return (hc.sum(dim=0) * wts).sum(dim=1)


def info_gain_scores_reference(
    pool_features: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    *,
    variant: str = "aeig",
    step_size: float = DEFAULT_STEP_SIZE,
    weight_decay: float = 0.0,
) -> np.ndarray:
    """Algorithm 1 literally, in float64 torch on CPU: per (a, c) copy the head, take one
    ``torch.optim.SGD`` step on the cross-entropy of ``(x_a, c)``, forward the evaluation set.

    Same arguments and result as :func:`info_gain_scores`; O(N·C) optimiser steps and
    evaluation passes, for testing and benchmarking only.
    """
    pool_features, eval_features, eval_labels, weight, bias = _validate(
        np.asarray(pool_features), eval_features, eval_labels, weight, bias,
        variant, step_size, weight_decay,
    )
    c, d = weight.shape
    head = nn.Linear(d, c).double()
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(np.asarray(weight, np.float64)))
        head.bias.copy_(torch.as_tensor(np.asarray(bias, np.float64)))
    x_eval = torch.as_tensor(np.asarray(eval_features, np.float64))
    x_pool = torch.as_tensor(np.asarray(pool_features, np.float64))
    prior = class_prior(eval_labels, c)
    with torch.no_grad():
        h1 = _mean_entropy(head(x_eval))
        proba = torch.softmax(head(x_pool), dim=-1).numpy()
    wts = candidate_weights(variant, proba, prior)
    scores = np.empty(x_pool.shape[0], dtype=np.float64)
    for a in range(x_pool.shape[0]):
        h2 = np.empty(c)
        for label in range(c):
            cand = copy.deepcopy(head)
            opt = torch.optim.SGD(
                [
                    {"params": [cand.weight], "weight_decay": weight_decay},
                    {"params": [cand.bias], "weight_decay": 0.0},
                ],
                lr=step_size,
            )
            loss = nn.functional.cross_entropy(cand(x_pool[a : a + 1]), torch.tensor([label]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                h2[label] = _mean_entropy(cand(x_eval))
        scores[a] = h1 - float(wts[a] @ h2)
    return scores


class _InfoGain(ScoreStrategy):
    """Shared implementation of the four information-gain strategies (see module docstring).

    Args:
        step_size: SGD step size η of the one-step head update (default 1e-3).
        weight_decay: λ on W only (default 0).
    """

    variant: str = "aeig"

    def __init__(self, step_size: float = DEFAULT_STEP_SIZE, weight_decay: float = 0.0) -> None:
        self.step_size = step_size
        self.weight_decay = weight_decay

    def check_params(self) -> None:
        for key, value, low in (("step_size", self.step_size, 0.0),
                                ("weight_decay", self.weight_decay, None)):
            number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            if not number or not np.isfinite(value) or (value < 0 if low is None else value <= 0):
                what = "a positive finite number" if low is not None else "a finite number >= 0"
                raise StrategyError(f"{key} must be {what}, got {value!r}")

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        if view.val_features is None or view.val_labels is None:
            raise StrategyError(
                f"{self.name} needs validation features and labels in the round view "
                "(the evaluation set of information gain)"
            )
        return info_gain_scores_rows(
            view.features, view.pool_indices, view.val_features, view.val_labels,
            view.weight, view.bias, variant=self.variant, step_size=float(self.step_size),
            weight_decay=float(self.weight_decay),
        )


@register_strategy("eig")
class EIG(_InfoGain):
    """Expected information gain: weights ``p(c|x_a)`` (Eq. 1)."""

    variant = "eig"


@register_strategy("aeig")
class AEIG(_InfoGain):
    """Adapted EIG: weights ``p(c|x_a) π_c``, π = validation class shares (Eq. 2)."""

    variant = "aeig"


@register_strategy("uig")
class UIG(_InfoGain):
    """Uniform information gain: weights ``1/C``."""

    variant = "uig"


@register_strategy("cfig")
class CFIG(_InfoGain):
    """Class-frequency information gain: weights ``π_c``."""

    variant = "cfig"
