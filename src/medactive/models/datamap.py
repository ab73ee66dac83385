"""Contrastive dataset map (HaCon, Chen et al. 2023, §2.2): how hard each image's two views are to
tell apart from other images, recorded while MoCo v2 trains.

A *map variant* is named ``"<competitors>:<rule>"``:

* competitors — which other views an anchor view is compared with:
  ``batch`` — the 2N−2 other in-batch views (paper Eq. 1; the positive is the (2N−1)-th candidate);
  ``batch+queue`` — those plus the MoCo queue's keys (more competitors per iteration: the authors'
  batch of 4,096 gave 8,191 candidates, our batch of 256 gives 511, + 4,096 queued keys);
  ``probe`` — a forward-only pass at epoch ends: several augmentation pairs of every image, each
  view compared with a *fixed* set of negative images (item 7 of issue 10: the competitors do not
  change from iteration to iteration, and the encoder is the epoch's final one).
* rule — what is recorded for one anchor view:
  ``tau=<t>`` — the softmax probability of the positive at temperature ``t`` (paper: 0.05; the
  authors' public code divided its logits in place by a list of temperatures, so its "0.05" map
  used an effective ``t`` = 0.2·0.1·0.05 = 0.001);
  ``hit`` — 1 if the positive is more similar than every competitor, else 0 (the ``t`` → 0 limit
  of the softmax, which the effective 0.001 nearly is: "how often is my other view my nearest
  neighbour");
  ``rank`` — the fraction of competitors less similar than the positive (temperature-free and
  graded: a near miss counts almost as a hit).

Every rule's value is averaged over both directions of the pair (Eq. 2). Per image, the map
*confidence* is the mean over all recordings and *variability* the standard deviation (Eq. 3).
All reductions are plain sums (:class:`MapAccumulator`), so a data-parallel run only has to
all-reduce the sum arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medactive.data.lazy import LazyImages
from medactive.errors import ConfigError

COMPETITORS = ("batch", "batch+queue", "probe")
# Variants recorded by every pre-training (cheap: a few (2N, 2N + Q) matrices per iteration), so
# one run answers the temperature / competitor / rule questions of docs/coldstart.md.
CATALOGUE_RULES = ("tau=0.2", "tau=0.05", "tau=0.001", "hit", "rank")
# Rows of anchors per similarity block: bounds memory at (rows x candidates) doubles.
_ROW_CHUNK = 1024


@dataclass(frozen=True)
class MapVariant:
    """One parsed map name: ``competitors`` in :data:`COMPETITORS`, ``rule`` in
    {``"softmax"``, ``"hit"``, ``"rank"``}, ``tau`` the softmax temperature (else ``None``)."""

    competitors: str
    rule: str
    tau: float | None = None

    @property
    def name(self) -> str:
        """Canonical name, e.g. ``"batch:tau=0.05"``."""
        rule = f"tau={self.tau:g}" if self.rule == "softmax" else self.rule
        return f"{self.competitors}:{rule}"


def parse_map_name(name: str) -> MapVariant:
    """Parse ``"<competitors>:<rule>"`` (see the module docstring).

    Raises:
        ConfigError: unknown competitors or rule, or a non-positive temperature.
    """
    comp, sep, rule = str(name).partition(":")
    if not sep or comp not in COMPETITORS:
        raise ConfigError(f"map variant {name!r}: expected '<competitors>:<rule>' with competitors "
                          f"in {COMPETITORS} and rule 'tau=<t>', 'hit' or 'rank'")
    if rule in ("hit", "rank"):
        return MapVariant(comp, rule)
    if rule.startswith("tau="):
        try:
            tau = float(rule[4:])
        except ValueError:
            tau = float("nan")
        if not tau > 0 or not math.isfinite(tau):
            raise ConfigError(f"map variant {name!r}: temperature must be a positive number")
        return MapVariant(comp, "softmax", tau)
    raise ConfigError(f"map variant {name!r}: rule must be 'tau=<t>', 'hit' or 'rank'")


def catalogue(primary: str, probe: bool) -> list[str]:
    """Names recorded by one pre-training: the primary map first, then :data:`CATALOGUE_RULES`
    for batch and batch+queue competitors (and for the probe when it runs), no duplicates."""
    names = [parse_map_name(primary).name]
    for comp in ("batch", "batch+queue", *(("probe",) if probe else ())):
        names += [parse_map_name(f"{comp}:{r}").name for r in CATALOGUE_RULES]
    return list(dict.fromkeys(names))


def rule_values(pos: torch.Tensor, others: torch.Tensor, variant: MapVariant) -> torch.Tensor:
    """One rule applied to each anchor.

    Args:
        pos: ``(R,)`` cosine similarity of each anchor to its positive.
        others: ``(R, M)`` cosine similarities to its competitors; ``-inf`` marks a masked slot
            (not a competitor).
        variant: the rule (its ``competitors`` field is ignored here).

    Returns:
        ``(R,)`` float64: softmax probability of the positive among itself and the competitors,
        the hit indicator, or the fraction of (unmasked) competitors below the positive.
    """
    pos, others = pos.double(), others.double()
    if variant.rule == "softmax":
        tau = variant.tau
        if tau is None:  # parse_map_name always sets it; a hand-built variant might not
            raise ConfigError(f"map variant {variant.competitors}:softmax has no temperature")
        logits = torch.cat([pos[:, None], others], dim=1) / tau
        return (pos / tau - torch.logsumexp(logits, dim=1)).exp()
    if variant.rule == "hit":
        return (pos > others.max(dim=1).values).double()
    valid = torch.isfinite(others)
    below = (others < pos[:, None]) & valid
    return below.sum(dim=1).double() / valid.sum(dim=1).clamp_min(1).double()


def _pair_rows(z: torch.Tensor, n: int, rows: slice,
               negatives: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    # anchors z[rows] of the 2N stacked views: similarity to the partner view and to competitors
    # (other in-batch views except itself and its partner, then the negatives)
    anchors = z[rows]
    idx = torch.arange(rows.start, rows.stop, device=z.device)
    partner = (idx + n) % (2 * n)
    sims = anchors @ z.T
    pos = sims[torch.arange(len(idx), device=z.device), partner]
    sims[torch.arange(len(idx), device=z.device), idx] = float("-inf")
    sims[torch.arange(len(idx), device=z.device), partner] = float("-inf")
    if negatives is not None and negatives.shape[0]:
        sims = torch.cat([sims, anchors @ negatives.T], dim=1)
    return pos, sims


def pair_map_values(
    z1: torch.Tensor,
    z2: torch.Tensor,
    variants: Sequence[MapVariant],
    queue: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Per-iteration map values of a batch for several variants from one set of projections.

    Args:
        z1: ``(N, P)`` projections of the first views (any norm; cosine similarity is used).
        z2: ``(N, P)`` projections of the second views; row ``n`` pairs with ``z1[n]``.
        variants: ``batch`` and ``batch+queue`` variants (``probe`` ones are skipped).
        queue: ``(Q, P)`` queued keys, the extra competitors of ``batch+queue`` variants (must not
            contain this batch's keys).

    Returns:
        ``{name: (N,) float64}``: the rule averaged over both directions of each pair.
    """
    n = z1.shape[0]
    z = nn.functional.normalize(torch.cat([z1, z2]).double(), dim=1)
    wanted = [v for v in variants if v.competitors in ("batch", "batch+queue")]
    out = {v.name: np.zeros(2 * n) for v in wanted}
    q = None if queue is None else nn.functional.normalize(queue.double(), dim=1)
    for s in range(0, 2 * n, _ROW_CHUNK):
        rows = slice(s, min(2 * n, s + _ROW_CHUNK))
        pos, batch_sims = _pair_rows(z, n, rows, None)
        queue_sims = None
        for v in wanted:
            if v.competitors == "batch+queue":
                if q is None:
                    raise ConfigError(f"map variant {v.name}: no queue given")
                if queue_sims is None:
                    queue_sims = torch.cat([batch_sims, z[rows] @ q.T], dim=1)
                others = queue_sims
            else:
                others = batch_sims
            out[v.name][rows] = rule_values(pos, others, v).cpu().numpy()
    return {k: 0.5 * (v[:n] + v[n:]) for k, v in out.items()}


def positive_pair_probability(z1: torch.Tensor, z2: torch.Tensor, tau: float,
                              queue: torch.Tensor | None = None) -> torch.Tensor:
    """Dataset-map probability of each image's positive pair (Eq. 1–2).

    Args:
        z1: ``(N, P)`` projections of the first views (any norm; cosine similarity is used).
        z2: ``(N, P)`` projections of the second views, row ``n`` pairs with ``z1[n]``.
        tau: temperature of the map.
        queue: optional ``(Q, P)`` extra competitors (the MoCo queue).

    Returns:
        ``(N,)`` float64: ``(p[n -> n'] + p[n' -> n]) / 2`` where ``p[i -> j]`` is the softmax of
        ``sim(z_i, z_j) / tau`` over the 2N−1 views other than ``i`` (and the queue, if given).
    """
    variant = MapVariant("batch" if queue is None else "batch+queue", "softmax", float(tau))
    values = pair_map_values(z1, z2, [variant], queue)[variant.name]
    return torch.from_numpy(values)


class MapAccumulator:
    """Running sums of map values per variant and image, overall and per epoch.

    Sums (not means) so that resuming and data-parallel all-reduce are exact additions.
    """

    def __init__(self, names: Sequence[str], n_images: int, n_epochs: int) -> None:
        self.names = list(names)
        v = len(self.names)
        self.total = np.zeros((v, n_images))
        self.total_sq = np.zeros((v, n_images))
        self.count = np.zeros((v, n_images))
        self.epoch_total = np.zeros((n_epochs, v, n_images))
        self.epoch_count = np.zeros((n_epochs, v, n_images))

    def add(self, epoch: int, idx: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Add ``values[name]`` ``(B,)`` for images ``idx`` ``(B,)`` (repeats allowed)."""
        for name, vals in values.items():
            r = self.names.index(name)
            np.add.at(self.total[r], idx, vals)
            np.add.at(self.total_sq[r], idx, vals * vals)
            np.add.at(self.count[r], idx, 1.0)
            np.add.at(self.epoch_total[epoch, r], idx, vals)
            np.add.at(self.epoch_count[epoch, r], idx, 1.0)

    def sums(self) -> list[np.ndarray]:
        """Copies of the five running sums: ``total, total_sq, count`` ``(V, N)`` then
        ``epoch_total, epoch_count`` ``(E, V, N)`` (what data-parallel ranks add up)."""
        return [a.copy() for a in (self.total, self.total_sq, self.count,
                                   self.epoch_total, self.epoch_count)]

    def set_sums(self, sums: Sequence[np.ndarray]) -> None:
        """Replace the running sums with ``sums`` (same order and shapes as :meth:`sums`)."""
        (self.total, self.total_sq, self.count,
         self.epoch_total, self.epoch_count) = (np.asarray(a, np.float64) for a in sums)

    def state_dict(self) -> dict[str, object]:
        """Arrays to checkpoint (all sums)."""
        return {"names": self.names, "total": self.total, "total_sq": self.total_sq,
                "count": self.count, "epoch_total": self.epoch_total,
                "epoch_count": self.epoch_count}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`'s arrays (same names and shapes)."""
        names = state["names"]
        if not isinstance(names, Sequence) or list(names) != self.names:
            raise ConfigError("checkpoint map variants differ from this configuration")
        for key in ("total", "total_sq", "count", "epoch_total", "epoch_count"):
            setattr(self, key, np.asarray(state[key], dtype=np.float64))

    def summary(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """``(confidence, variability, trajectory)``: per-name ``(N,)`` mean and standard
        deviation over all recordings, and ``(E, V, N)`` float32 per-epoch means (NaN where an
        epoch recorded nothing, e.g. probe variants in epochs without a probe)."""
        cnt = np.maximum(self.count, 1.0)
        mean = self.total / cnt
        std = np.sqrt(np.maximum(self.total_sq / cnt - mean**2, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            traj = np.where(self.epoch_count > 0, self.epoch_total / self.epoch_count, np.nan)
        conf = {n: mean[i] for i, n in enumerate(self.names)}
        var = {n: std[i] for i, n in enumerate(self.names)}
        return conf, var, traj.astype(np.float32)


@torch.no_grad()
def probe_map_values(
    net: nn.Module,
    images: np.ndarray | LazyImages,
    view: Callable[[np.ndarray], torch.Tensor],
    variants: Sequence[MapVariant],
    negative_idx: np.ndarray,
    pairs: int,
    device: torch.device,
    batch_size: int = 512,
) -> dict[str, np.ndarray]:
    """Forward-only map of every image against a fixed set of negatives (``probe`` variants).

    Args:
        net: projection network (``(B, C, H, W)`` -> ``(B, P)``), run in eval mode.
        images: uint8 ``(N, H, W, C)``, in memory or lazy (indexed one batch at a time).
        view: maps uint8 images ``(B, H, W, C)`` to one augmented, normalised input batch.
        variants: ``probe`` variants (others are skipped).
        negative_idx: ``(M,)`` indices of the negative images (one augmented view each); an
            image is never its own negative.
        pairs: augmentation pairs per image (the values are averaged over them).
        device: where to compute.
        batch_size: images per forward pass.

    Returns:
        ``{name: (N,) float64}``.
    """
    wanted = [v for v in variants if v.competitors == "probe"]
    n = images.shape[0]
    was_training = net.training
    net.eval()
    try:
        embed = lambda ix: nn.functional.normalize(net(view(images[ix])).double(), dim=1)  # noqa: E731
        neg = torch.cat([embed(negative_idx[s : s + batch_size])
                         for s in range(0, len(negative_idx), batch_size)])
        neg_pos = torch.as_tensor(negative_idx, device=device)
        out = {v.name: np.zeros(n) for v in wanted}
        for s in range(0, n, batch_size):
            ix = np.arange(s, min(n, s + batch_size))
            own = torch.as_tensor(ix, device=device)[:, None] == neg_pos[None, :]  # (B, M)
            for _ in range(pairs):
                z1, z2 = embed(ix), embed(ix)
                pos = (z1 * z2).sum(dim=1)
                for anchor in (z1, z2):
                    others = (anchor @ neg.T).masked_fill(own, float("-inf"))
                    for v in wanted:
                        out[v.name][ix] += rule_values(pos, others, v).cpu().numpy()
        return {k: v / (2.0 * pairs) for k, v in out.items()}
    finally:
        net.train(was_training)
