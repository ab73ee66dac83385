"""SIMULATION ONLY: cold-start analysis that reads ground-truth labels.

Nothing here is usable in a real cold start (no labels exist yet); it reproduces the paper's
analyses on fully labelled benchmarks:

* the supervised dataset map (Swayamdipta et al. 2020): confidence / variability of the
  probability of the *true* label along the training trajectory of a linear head on the features,
  and the ``easy-to-learn`` / ``hard-to-learn`` strategies built on it (paper Fig. 4b);
* the true-class diversity ("Unif.") wrapper: any strategy run per ground-truth class with the
  budget spread evenly (paper Table 1).

Every strategy here raises unless ``view.true_labels`` is set, and is hidden from
``list_coldstart_strategies()`` unless ``include_simulation=True``.
"""

from __future__ import annotations

import numpy as np

from medactive.coldstart.base import (
    ColdStartStrategy,
    ColdStartView,
    check_coldstart_budget,
    checked_coldstart_strategy,
    get_coldstart_strategy,
    register_coldstart_strategy,
)
from medactive.coldstart.hacon import round_robin
from medactive.errors import StrategyError


def supervised_dataset_map(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int | None = None,
    *,
    epochs: int = 20,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Swayamdipta et al.'s dataset map of a linear head trained on ``(N, D)`` features.

    After every epoch, the head's softmax probability of each image's true label is recorded.

    Returns:
        ``(confidence (N,), variability (N,))``: mean and standard deviation over epochs.
    """
    import torch  # lazy: keeps `import medactive.coldstart` (and so the CLI) light
    from torch import nn

    labels = np.asarray(labels, dtype=np.int64)
    if labels.min() < 0:
        raise StrategyError("supervised dataset map needs every label (simulation only)")
    c = int(n_classes or labels.max() + 1)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)  # standardise so one lr suits any backbone
    y = torch.from_numpy(labels)
    head = nn.Linear(x.shape[1], c)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    probs = np.empty((epochs, x.shape[0]))
    with torch.enable_grad():
        for e in range(epochs):
            perm = torch.randperm(x.shape[0], generator=gen)
            for s in range(0, x.shape[0], batch_size):
                idx = perm[s : s + batch_size]
                loss = nn.functional.cross_entropy(head(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                p = torch.softmax(head(x), dim=1)
                probs[e] = p[torch.arange(x.shape[0]), y].numpy()
    return probs.mean(0), probs.std(0)


def _need_truth(view: ColdStartView, name: str) -> np.ndarray:
    if view.true_labels is None:
        raise StrategyError(f"{name} is simulation-only: it needs view.true_labels")
    return np.asarray(view.true_labels, dtype=np.int64)


class _SupervisedMapStrategy(ColdStartStrategy):
    simulation_only = True
    _hardest = True

    def __init__(self, epochs: int = 20, seed: int = 0) -> None:
        self.epochs = epochs
        self.seed = seed

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        truth = _need_truth(view, self.name)
        check_coldstart_budget(view.n, budget)
        conf, _ = supervised_dataset_map(view.features, truth, epochs=self.epochs, seed=self.seed)
        key = conf if self._hardest else -conf
        idx = np.lexsort((rng.random(view.n), key))[:budget].astype(np.int64)
        return idx, -key[idx]


@register_coldstart_strategy("hard-to-learn")
class HardToLearn(_SupervisedMapStrategy):
    """SIMULATION ONLY: lowest supervised-map confidence first."""


@register_coldstart_strategy("easy-to-learn")
class EasyToLearn(_SupervisedMapStrategy):
    """SIMULATION ONLY: highest supervised-map confidence first."""

    _hardest = False


@register_coldstart_strategy("label-diversity")
class TrueClassDiversity(ColdStartStrategy):
    """SIMULATION ONLY: run ``base`` inside every ground-truth class, budget spread evenly.

    Args:
        base: registered cold-start strategy run inside each class (default ``"random"``).
        base_params: its parameters.

    The class order of each round is drawn from ``rng``; a class that runs out drops out and its
    share goes to the others (same rule as HaCon's clusters).
    """

    simulation_only = True

    def __init__(self, base: str = "random", base_params: dict[str, object] | None = None) -> None:
        self.base = base
        self.base_params = base_params

    def check_params(self) -> None:
        if self.base == self.name:
            raise StrategyError(f"{self.name} cannot wrap itself")
        checked_coldstart_strategy(self.base, **(self.base_params or {}))

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        truth = _need_truth(view, self.name)
        check_coldstart_budget(view.n, budget)
        classes = np.unique(truth)
        members = [np.flatnonzero(truth == c) for c in classes]
        # round-robin over classes on arrays of the class id itself: yields whose turn each pick is
        owner = round_robin([np.full(m.size, g) for g, m in enumerate(members)], budget,
                            rng.permutation(classes.size))
        counts = np.bincount(owner, minlength=classes.size)
        base = get_coldstart_strategy(self.base, **(self.base_params or {}))
        picks = {
            g: members[g][base.select(view.subset(members[g]), int(counts[g]), rng)]
            for g in range(classes.size) if counts[g] > 0
        }
        used = dict.fromkeys(picks, 0)
        out = []
        for g in owner.tolist():  # interleave classes in round-robin order
            out.append(int(picks[g][used[g]]))
            used[g] += 1
        return np.asarray(out, dtype=np.int64), None
