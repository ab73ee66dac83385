"""Information-gain acquisition (EIG, AEIG, UIG, CFIG; Mehta et al., Eq. 1–2, Algorithm 1), exact.

For a linear head θ = (W, b) on frozen features, ``H(θ)`` is the mean Shannon entropy (nats) of
``softmax(W h_e + b)`` over the evaluation (validation) images; ``H1 = H(θ)``. For a pool image
``a`` and a class ``c``, ``θ'(a, c)`` is **one** optimiser step on the cross-entropy of
``(h_a, c)`` and ``H2(a, c) = H(θ'(a, c))``. The score is ``H1 - Σ_c w_c(a) H2(a, c)`` with
weights ``p(c|x_a)`` (EIG), ``p(c|x_a) π_c`` (AEIG, the paper's unnormalised Eq. 2), ``1/C``
(UIG) or ``π_c`` (CFIG); π = evaluation class shares. ``normalize=True`` divides the weights by
their sum (only AEIG's change: ``p π / Σ p π``, the prior-corrected posterior of Saerens et al.).

The step (``update``):

* ``"sgd"``: ``θ' = θ - η(∇θ + λ[W, 0])`` with ``η = step_size / (1 + mean_e ‖h_e‖²)``. The
  gradient of the loss is ``r = p_a - e_c`` for b and ``r h_aᵀ`` for W, so the candidate's own
  logits move by ``η (1 + ‖h_a‖²) r``: ``step_size`` is the logit movement per unit of residual
  for an image of mean squared feature norm, whatever the backbone's feature scale.
* ``"adam"``: one ``torch.optim.Adam`` step from fresh state (the paper's optimiser; L2 weight
  decay λ on W only), learning rate ``step_size``. At step 1 Adam's bias corrections cancel and
  every parameter moves by ``-lr · g / (|g| + ε)``: a sign step of size lr, shrunk only where
  ``|g|`` is comparable with ε.

The scores are computed in closed form (:mod:`medactive.strategies.infogain_closed_form`: one
Gram product for all N×C candidate heads, then O(C) per pair), chunked over pool and evaluation
rows so memory is bounded for any N.
"""

from __future__ import annotations

import numpy as np
import torch

from medactive.errors import StrategyError
from medactive.models.device import select_device
from medactive.rng import seed_or_draw
from medactive.strategies.base import RoundView, ScoreStrategy, register_strategy
from medactive.strategies.infogain_closed_form import AdamStep, SGDStep, weighted_h2_sum

VARIANTS = ("eig", "aeig", "uig", "cfig")
UPDATES = ("sgd", "adam")

#: Default SGD step in logit units (see the module docstring and docs/strategies.md): one step
#: moves a typical candidate's own logits by 0.1 × its residual, the order of one Adam step of the
#: paper's recipe, i.e. "one more labelled image" rather than a jump; the ranking is stable below
#: it (docs/strategies.md, sensitivity table) while EIG's O(step²) signal stays ≫ float rounding.
DEFAULT_STEP_SIZE = 0.1
#: Default Adam learning rate: the paper's training recipe (Mehta et al., appendix: lr 5e-4).
DEFAULT_ADAM_LR = 5e-4

# Elements (K_chunk x P_chunk x C) of one float64 working tensor: 2**18 * 8 B = 2 MB, roughly
# cache sized so the ~15 elementwise passes stay cache friendly (measured fastest of 2**16..2**20).
_CHUNK_ELEMENTS = 2**18
# Elements of the Adam transformed pool vectors (P_chunk x C x D) held at once: 32 MB float64.
_ADAM_ELEMENTS = 2**22


def default_step_size(update: str) -> float:
    """The default ``step_size`` of ``update``: 0.1 logit units (SGD) or lr 5e-4 (Adam)."""
    return DEFAULT_ADAM_LR if update == "adam" else DEFAULT_STEP_SIZE


def _validate(
    pool_features: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    variant: str,
    step_size: float,
    weight_decay: float,
    update: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if variant not in VARIANTS:
        raise StrategyError(f"unknown info-gain variant {variant!r}; known: {', '.join(VARIANTS)}")
    if update not in UPDATES:
        raise StrategyError(f"unknown info-gain update {update!r}; known: {', '.join(UPDATES)}")
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
    if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))
            and np.all(np.isfinite(eval_features))):
        raise StrategyError("head or evaluation features contain NaN or infinite values")
    return pool_features, eval_features, eval_labels, weight, bias


def class_prior(eval_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C,)`` share π_c of evaluation labels equal to c (sums to 1)."""
    counts = np.bincount(np.asarray(eval_labels, np.int64), minlength=n_classes)
    return counts / counts.sum()


def candidate_weights(
    variant: str, proba: np.ndarray, prior: np.ndarray, normalize: bool = False
) -> np.ndarray:
    """``(P, C)`` weight of ``H2(a, c)`` in the score, for ``(P, C)`` pool probabilities.

    ``normalize`` divides each row by its sum; only AEIG's rows (``p π``) do not already sum to 1.
    """
    if variant == "eig":
        w = np.array(proba, dtype=np.float64, copy=True)
    elif variant == "aeig":
        w = proba * prior[None, :]
    elif variant == "uig":
        w = np.full(proba.shape, 1.0 / proba.shape[1])
    else:  # cfig
        w = np.broadcast_to(prior[None, :], proba.shape).copy()
    if normalize:
        w /= np.maximum(w.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return w


def stratified_subsample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of ``n`` of ``labels`` (``n < len``), each class's count proportional
    to its share (largest remainders; at least one per class while ``n`` allows)."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / counts.sum()
    take = np.floor(quota).astype(np.int64)
    if n >= classes.size:
        take = np.maximum(take, 1)
    while take.sum() > n:  # the "at least one" floor overshot: trim the largest
        take[np.argmax(take)] -= 1
    while take.sum() < n:  # largest remainder first, never beyond a class's size
        gap = np.where(take < counts, quota - take, -np.inf)
        take[int(np.argmax(gap))] += 1
    picks = [rng.choice(np.flatnonzero(labels == cl), k, replace=False)
             for cl, k in zip(classes, take, strict=True) if k > 0]
    return np.sort(np.concatenate(picks))


def sgd_learning_rate(step_size: float, eval_features: np.ndarray) -> float:
    """η of the SGD update: ``step_size / (1 + mean_e ‖h_e‖²)`` over ``(K, D)`` features."""
    sq = np.einsum("ij,ij->i", eval_features, eval_features, dtype=np.float64)
    return float(step_size / (1.0 + sq.mean()))


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
    step_size: float | None = None,
    weight_decay: float = 0.0,
    update: str = "sgd",
    normalize: bool = False,
    prior: np.ndarray | None = None,
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
        step_size: SGD step in logit units (default 0.1), or Adam's learning rate (default 5e-4).
        weight_decay: λ, applied to W only (L2 added to the gradient, as ``torch.optim``).
        update: ``"sgd"`` or ``"adam"`` (one step from fresh state); see the module docstring.
        normalize: divide the weights by their sum (AEIG: ``p π / Σ p π``).
        prior: optional ``(C,)`` class shares π to use instead of ``eval_labels``' (lets a caller
            score against a subsample of the evaluation set while keeping the full set's π).

    Returns:
        ``(N,)`` float64 scores, higher = acquire first. Uses CUDA when available.
    """
    pool_features = np.asarray(pool_features)
    return info_gain_scores_rows(
        pool_features, None, eval_features, eval_labels, weight, bias, variant=variant,
        step_size=step_size, weight_decay=weight_decay, update=update, normalize=normalize,
        prior=prior,
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
    step_size: float | None = None,
    weight_decay: float = 0.0,
    update: str = "sgd",
    normalize: bool = False,
    prior: np.ndarray | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """:func:`info_gain_scores` for ``features[rows]`` (all rows if None) without copying them.

    Lets a strategy score a huge pool straight from ``view.features``; chunk copies only.
    """
    step = default_step_size(update) if step_size is None else float(step_size)
    features, eval_features, eval_labels, weight, bias = _validate(
        features, eval_features, eval_labels, weight, bias, variant, step, weight_decay, update
    )
    dev = select_device(device)
    f64 = torch.float64
    gram_dtype = f64 if features.dtype == np.float64 else torch.float32
    c, d = weight.shape
    w = torch.as_tensor(np.asarray(weight, np.float64), device=dev)
    b = torch.as_tensor(np.asarray(bias, np.float64), device=dev)
    he64 = torch.as_tensor(np.asarray(eval_features, np.float64), device=dev)
    he = he64.to(gram_dtype)
    k_eval = he.shape[0]
    z_eval = he64 @ w.T + b  # (K, C)
    h1 = _mean_entropy(z_eval)
    if prior is None:
        prior = class_prior(eval_labels, c)
    else:
        prior = np.asarray(prior, np.float64)
        if prior.shape != (c,) or np.any(prior < 0) or not np.isclose(prior.sum(), 1.0):
            raise StrategyError(f"prior must be {c} non-negative shares summing to 1")
    if update == "sgd":
        eta = sgd_learning_rate(step, eval_features)
        # Weight decay shrinks W the same way for every candidate: fold it into the base logits.
        base = z_eval - (eta * weight_decay) * (z_eval - b)
        step_of: SGDStep | AdamStep = SGDStep(he, base, eta)
        p_chunk = 4096
    else:
        step_of = AdamStep(he, z_eval, w, step, weight_decay, gram_dtype)
        p_chunk = max(1, _ADAM_ELEMENTS // (c * d))

    rows_all = np.arange(features.shape[0]) if rows is None else np.asarray(rows, np.int64)
    n = rows_all.size
    out = np.empty(n, dtype=np.float64)
    p_chunk = max(1, min(n, p_chunk))
    k_chunk = max(1, min(k_eval, _CHUNK_ELEMENTS // (c * min(p_chunk, 256))))
    p_inner = max(1, min(p_chunk, _CHUNK_ELEMENTS // (c * k_chunk)))
    for start in range(0, n, p_chunk):
        ha_np = features[rows_all[start : start + p_chunk]]
        ha = torch.as_tensor(np.ascontiguousarray(ha_np), device=dev)
        proba = torch.softmax(ha.to(f64) @ w.T + b, dim=-1)  # (P, C)
        wts = torch.as_tensor(
            candidate_weights(variant, proba.cpu().numpy(), prior, normalize), device=dev
        )
        step_of.prepare(ha, proba)
        acc = torch.zeros(ha.shape[0], dtype=f64, device=dev)
        for i0 in range(0, ha.shape[0], p_inner):
            sl = slice(i0, i0 + p_inner)
            for e0 in range(0, k_eval, k_chunk):
                v, bump = step_of.block(slice(e0, e0 + k_chunk), sl)
                acc[sl] += weighted_h2_sum(v, bump, wts[sl])
        out[start : start + ha.shape[0]] = h1 - (acc / k_eval).cpu().numpy()
    return out


class _InfoGain(ScoreStrategy):
    """Shared implementation of the four information-gain strategies (see module docstring).

    Args:
        step_size: SGD step in logit units (default 0.1) or Adam lr (default 5e-4); None =
            the default of ``update``.
        weight_decay: λ on W only (default 0).
        update: ``"sgd"`` (default) or ``"adam"``.
        normalize: divide the weights by their sum (AEIG: ``p π / Σ p π``; default False, the
            paper's literal Eq. 2).
        n_targets: score against this many evaluation images, drawn per round (stratified by
            class, π still from the whole set) — a Monte-Carlo estimate of the mean entropy with
            the same draw for every candidate, ``K / n_targets`` times cheaper. None (default):
            the whole evaluation set, as the paper.
        seed: seed of that draw (None: from the round's rng).
    """

    variant: str = "aeig"

    def __init__(self, step_size: float | None = None, weight_decay: float = 0.0,
                 update: str = "sgd", normalize: bool = False, n_targets: int | None = None,
                 seed: int | None = None) -> None:
        self.step_size = step_size
        self.weight_decay = weight_decay
        self.update = update
        self.normalize = normalize
        self.n_targets = n_targets
        self.seed = seed

    def check_params(self) -> None:
        for key, value, low in (("step_size", self.step_size, 0.0),
                                ("weight_decay", self.weight_decay, None)):
            if value is None and key == "step_size":
                continue  # the update rule's default
            number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            if not number or value is None or not np.isfinite(value) or (
                    value < 0 if low is None else value <= 0):
                what = "a positive finite number" if low is not None else "a finite number >= 0"
                raise StrategyError(f"{key} must be {what}, got {value!r}")
        if self.update not in UPDATES:
            raise StrategyError(f"unknown info-gain update {self.update!r}; known: "
                                f"{', '.join(UPDATES)}")
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise StrategyError(f"normalize must be true or false, got {self.normalize!r}")
        if self.n_targets is not None and (
            not isinstance(self.n_targets, (int, np.integer)) or isinstance(self.n_targets, bool)
            or self.n_targets < 1
        ):
            raise StrategyError(f"n_targets must be a positive integer or None, got "
                                f"{self.n_targets!r}")

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        self.check_params()
        if view.val_features is None or view.val_labels is None:
            raise StrategyError(
                f"{self.name} needs validation features and labels in the round view "
                "(the evaluation set of information gain)"
            )
        val_labels = np.asarray(view.val_labels, np.int64)
        prior = class_prior(val_labels, view.n_classes)
        targets = np.arange(val_labels.size)
        if self.n_targets is not None and self.n_targets < val_labels.size:
            local = np.random.default_rng(seed_or_draw(self.seed, rng))
            targets = stratified_subsample(val_labels, int(self.n_targets), local)
        return info_gain_scores_rows(
            view.features, view.pool_indices, view.val_features[targets], val_labels[targets],
            view.weight, view.bias, variant=self.variant,
            step_size=None if self.step_size is None else float(self.step_size),
            weight_decay=float(self.weight_decay), update=self.update,
            normalize=bool(self.normalize), prior=prior,
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
