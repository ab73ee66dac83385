"""Consistency-based acquisition (Gao et al. 2020): disagreement across augmented views."""

from __future__ import annotations

import numpy as np
import torch

from medactive.errors import StrategyError
from medactive.models.classifier import images_to_tensor
from medactive.models.device import select_device
from medactive.models.training import make_augmentation
from medactive.rng import seed_or_draw
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    register_strategy,
    require_network,
)


@register_strategy("consistency")
class Consistency(ScoreStrategy):
    """Score = Σ_c Var_m p_m(c|x): variance of the network's predictions over ``n_augment``
    random augmentations (flips, rotation up to ``rotation_degrees``, the training recipe's
    augmentation) of each pool image. Inconsistent predictions = the model has not yet learnt
    the image's invariances, so a label there helps most (Gao et al. 2020).

    Needs ``view.model`` and ``view.images`` (the network re-runs, ``n_augment`` passes).

    Args:
        n_augment: augmented views per image (default 5). rotation_degrees: default 30.
        batch_size: images per forward batch (default 256). seed: augmentation seed (None: from
            the round's rng). device: torch device (default: CUDA if present).
    """

    def __init__(
        self,
        n_augment: int = 5,
        rotation_degrees: float = 30.0,
        batch_size: int = 256,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        self.n_augment = n_augment
        self.rotation_degrees = rotation_degrees
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def check_params(self) -> None:
        if not isinstance(self.n_augment, (int, np.integer)) or self.n_augment < 2:
            raise StrategyError(f"n_augment must be an integer >= 2, got {self.n_augment!r}")

    def _score(self, view: RoundView, seed: int) -> np.ndarray:
        require_network(view, self.name)
        self.check_params()
        dev = select_device(self.device)
        model = view.model.to(dev).eval()
        augment = make_augmentation(float(self.rotation_degrees)).to(dev)
        idx = view.pool_indices
        out = np.empty(idx.size, dtype=np.float64)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, idx.size, int(self.batch_size)):
                x = images_to_tensor(view.images[idx[start : start + int(self.batch_size)]], dev)
                probs = torch.stack(
                    [torch.softmax(model(augment(x)), dim=1) for _ in range(int(self.n_augment))]
                ).double()  # (M, B, C)
                out[start : start + x.shape[0]] = probs.var(dim=0).sum(dim=1).cpu().numpy()
        return out

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        return self._score(view, seed_or_draw(self.seed, rng))
