"""Slow, literal reference implementations (test oracles and benchmark baselines).

Written from the papers' text with plain loops and torch autograd, deliberately sharing **no**
code with the fast paths (nothing is imported from ``infogain.py`` or ``epig.py``, not even a
prior, entropy or validation helper), so an error in a shared helper cannot pass both.

* :func:`info_gain_scores_reference` — Mehta et al., Algorithm 1: per pool image a and label c,
  copy the head, take one ``torch.optim.SGD`` or ``torch.optim.Adam`` step on the cross-entropy
  of ``(x_a, c)``, forward the evaluation set and recompute its mean entropy.
* :func:`epig_scores_reference` — Bickford Smith et al. (2023), Eq. 2: for every pool image n and
  target m, the mutual information of the two labels under the sampled joint, a double loop.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def _entropy_of_predictions(head: nn.Module, x: torch.Tensor) -> float:
    """Mean over rows of the Shannon entropy (nats) of ``softmax(head(x))``, written out."""
    with torch.no_grad():
        p = torch.softmax(head(x), dim=1)
        terms = torch.where(p > 0, -p * torch.log(p), torch.zeros_like(p))
        return float(terms.sum(dim=1).mean())


def info_gain_scores_reference(
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
) -> np.ndarray:
    """Algorithm 1 of Mehta et al. run literally, float64 torch on CPU.

    Same arguments and result as :func:`medactive.strategies.infogain.info_gain_scores`
    (documented in docs/strategies.md): ``update="sgd"`` takes one SGD step with learning rate
    ``step_size / (1 + mean_e ‖h_e‖²)`` (``step_size`` in logit units, default 0.1);
    ``update="adam"`` one Adam step from fresh state with lr ``step_size`` (default 5e-4). Weight
    decay λ applies to W only. O(N·C) optimiser steps and evaluation passes: tests only.

    Returns:
        ``(N,)`` float64 scores ``H1 - Σ_c w_c(a) H2(a, c)``.
    """
    x_pool = torch.as_tensor(np.asarray(pool_features, np.float64))
    x_eval = torch.as_tensor(np.asarray(eval_features, np.float64))
    labels = [int(v) for v in np.asarray(eval_labels).ravel()]
    n_classes, dim = np.asarray(weight).shape
    head = nn.Linear(dim, n_classes).double()
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(np.asarray(weight, np.float64)))
        head.bias.copy_(torch.as_tensor(np.asarray(bias, np.float64)))
    # π_c: "the total number of samples with class-label c in the evaluation dataset" / K.
    prior = [labels.count(c) / len(labels) for c in range(n_classes)]
    if update == "sgd":
        step = 0.1 if step_size is None else step_size
        mean_sq_norm = float((x_eval * x_eval).sum(dim=1).mean())
        lr = step / (1.0 + mean_sq_norm)
    else:
        lr = 5e-4 if step_size is None else step_size
    h1 = _entropy_of_predictions(head, x_eval)
    scores = np.empty(x_pool.shape[0], dtype=np.float64)
    for a in range(x_pool.shape[0]):
        with torch.no_grad():
            p = torch.softmax(head(x_pool[a : a + 1]), dim=1)[0].tolist()
        if variant == "eig":  # Eq. 1: P = p(y_a = c | x_a, D^L)
            weights = list(p)
        elif variant == "aeig":  # Eq. 2: P = p(y_a = c | x_a, D^L) · |y_eval = c| / K
            weights = [p[c] * prior[c] for c in range(n_classes)]
        elif variant == "uig":  # Sec. 4.2 (i): P = 1 / C
            weights = [1.0 / n_classes] * n_classes
        elif variant == "cfig":  # Sec. 4.2 (ii): P = |y_eval = c| / K
            weights = list(prior)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        if normalize:
            total = sum(weights)
            weights = [wc / total for wc in weights]
        expected_h2 = 0.0
        for c in range(n_classes):
            candidate = copy.deepcopy(head)
            groups = [{"params": [candidate.weight], "weight_decay": weight_decay},
                      {"params": [candidate.bias], "weight_decay": 0.0}]
            if update == "sgd":
                optimiser: torch.optim.Optimizer = torch.optim.SGD(groups, lr=lr)
            elif update == "adam":
                optimiser = torch.optim.Adam(groups, lr=lr)
            else:
                raise ValueError(f"unknown update {update!r}")
            loss = nn.functional.cross_entropy(candidate(x_pool[a : a + 1]), torch.tensor([c]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            expected_h2 += weights[c] * _entropy_of_predictions(candidate, x_eval)
        scores[a] = h1 - expected_h2
    return scores


def epig_scores_reference(
    pool_probs: np.ndarray, target_probs: np.ndarray, target_weights: np.ndarray | None = None
) -> np.ndarray:
    """EPIG by a plain loop over pool images n and targets m.

    ``EPIG(n) = Σ_m w_m I(y_n; y*_m)``, with the joint ``p(y, y*) = mean_t p_t(y|x_n) p_t(y*|x*_m)``
    and ``I = Σ p(y, y*) log[p(y, y*) / (p(y) p(y*))]`` (0 log 0 = 0); ``w_m = 1/M`` unless
    ``target_weights`` (normalised to sum 1) are given.

    Args:
        pool_probs: ``(T, N, C)`` probabilities under T posterior samples.
        target_probs: ``(T, M, C)`` probabilities of the targets under the same samples.
        target_weights: optional ``(M,)`` non-negative weights.

    Returns:
        ``(N,)`` float64 nats.
    """
    pool = np.asarray(pool_probs, np.float64)
    targ = np.asarray(target_probs, np.float64)
    n_samples, n_pool, n_classes = pool.shape
    n_targets = targ.shape[1]
    w = (np.full(n_targets, 1.0 / n_targets) if target_weights is None
         else np.asarray(target_weights, np.float64) / np.sum(target_weights))
    out = np.zeros(n_pool)
    for n in range(n_pool):
        for m in range(n_targets):
            joint = np.zeros((n_classes, n_classes))
            for t in range(n_samples):
                joint += np.outer(pool[t, n], targ[t, m]) / n_samples
            marg_y = joint.sum(axis=1)
            marg_t = joint.sum(axis=0)
            mi = 0.0
            for i in range(n_classes):
                for j in range(n_classes):
                    if joint[i, j] > 0:
                        mi += joint[i, j] * np.log(joint[i, j] / (marg_y[i] * marg_t[j]))
            out[n] += w[m] * mi
    return out
