""""Why this image": each queued image's reason, in words a reader can check before answering.

The page shows, for every image of a round, three lines built here:

* a **headline**: why the image is in the queue at all — the strategy's pick ("cold start: the
  most typical image of cluster 3 of 20"), the random validation draw, or a second read;
* the **score with its meaning**: the strategy's own recorded score, converted to the quantity
  it stands for ("margin 0.03: the model is torn between basophil and eosinophil",
  "typicality 4.1: ...", "entropy 1.2 nats (2.08 = all 8 classes equally likely)");
* what the **strategy** does, in one sentence.

The score is never re-computed: it is the value the strategy's ``rank()`` returned and the round
recorded (a margin strategy records ``-(p1 - p2)``, shown as the margin ``p1 - p2``). Names of
the model's classes appear only where the reader may see the model's guess (``show_predictions
first``, or once the reader answered): otherwise the text says which quantity and that the
classes are named after answering, so "why this image" never anchors the reader.

A cold-start round may record the K-means cluster of each pick in its parameters
(``params["clusters"] = {"<image id>": cluster, ...}``, 0-based as K-means numbers them; shown
1-based): the headline then names the cluster. Without it, the headline says "one of K
clusters".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: What each strategy does, in one sentence (acquisition and cold-start registries).
STRATEGY_TEXT = {
    "cluster-margin-then-margin": "the least certain image of each cluster of similar images "
                                  "while labels are scarce, then the least certain images",
    "cluster-margin": "the least certain image of each cluster of similar images",
    "cluster-top": "the highest-scoring image of each cluster of similar images",
    "margin": "the images whose two most likely classes are closest",
    "least-confidence": "the images whose most likely class is least probable",
    "entropy": "the images the model is most uncertain about (entropy)",
    "mc-entropy": "the images most uncertain under dropout sampling (entropy)",
    "bald": "the images whose dropout samples disagree most (BALD)",
    "batchbald": "a batch whose dropout samples disagree most jointly (BatchBALD)",
    "eig": "the images expected to sharpen the model most (expected information gain)",
    "aeig": "the images expected to sharpen the model most, weighted by the validation class "
            "shares (adapted expected information gain)",
    "uig": "the images expected to sharpen the model most, every class weighted alike",
    "cfig": "the images expected to sharpen the model most, weighted by class frequency",
    "epig": "the images expected to improve predictions on the target images most (EPIG)",
    "epig-balanced": "the images expected to improve predictions most, classes balanced (EPIG)",
    "typiclust": "the most typical image of each cluster of similar images (TypiClust)",
    "typiclust-margin": "typical images while labels are scarce, then the least certain ones",
    "switch": "one strategy while labels are scarce, another afterwards",
    "probcover": "the images whose neighbourhoods cover the most uncovered images (ProbCover)",
    "coreset": "the images farthest from every labelled image (core-set)",
    "badge": "uncertain and mutually different images (BADGE)",
    "consistency": "the images whose predictions change most under augmentation",
    "vaal": "the images that look least like the labelled ones (VAAL)",
    "diversity": "a strategy's picks spread over groups of similar images",
    "random": "a uniformly random pick (the baseline)",
    "hacon": "the hardest-to-contrast image of each cluster of similar images (HaCon)",
    "easy-to-contrast": "the easiest-to-contrast image of each cluster of similar images",
    "hard-to-contrast-global": "the hardest-to-contrast images of the whole pool",
    "kmeans-centroid": "the image nearest the centre of each cluster of similar images",
    "kmeans-pixels": "the image nearest the centre of each pixel-space cluster",
}
PURPOSE_TEXT = {
    "validation": "validation sample: a uniformly random draw — each such image is scored by a "
                  "model that never saw its label, so it measures the model honestly",
    "second-read": "second read: the model disagrees with the first reader's answer (not shown "
                   "to you)",
}


@dataclass(frozen=True)
class ScoreKind:
    """How a strategy's recorded score reads: its name, the sign that turns it into that
    quantity, and what it means."""

    name: str
    sign: float = 1.0
    unit: str = ""


MARGIN = ScoreKind("margin", -1.0)
TORN = 0.2  # a margin up to this reads "torn between" (two classes within 20 points)
KINDS = {
    "margin": MARGIN, "cluster-margin": MARGIN, "cluster-margin-then-margin": MARGIN,
    "least-confidence": ScoreKind("least confidence"),
    "entropy": ScoreKind("entropy", unit=" nats"), "mc-entropy": ScoreKind("entropy",
                                                                            unit=" nats"),
    "bald": ScoreKind("BALD", unit=" nats"), "batchbald": ScoreKind("BALD", unit=" nats"),
    **{n: ScoreKind("information gain", unit=" nats") for n in ("eig", "aeig", "uig", "cfig")},
    "epig": ScoreKind("EPIG", unit=" nats"), "epig-balanced": ScoreKind("EPIG", unit=" nats"),
    "typiclust": ScoreKind("typicality"), "probcover": ScoreKind("coverage"),
    "coreset": ScoreKind("distance"), "badge": ScoreKind("gradient distance"),
    "consistency": ScoreKind("variance"), "vaal": ScoreKind("unlabelled-ness"),
}
# the switch strategies' default (low, high) pair
SWITCHES = {"switch": ("typiclust", "margin"), "typiclust-margin": ("typiclust", "margin"),
            "cluster-margin-then-margin": ("cluster-margin", "margin")}
COLD_KINDS = {
    "typiclust": ScoreKind("typicality"), "probcover": ScoreKind("coverage"),
    "hacon": ScoreKind("hardness"), "hard-to-contrast-global": ScoreKind("hardness"),
    "easy-to-contrast": ScoreKind("contrastive confidence"),
    "kmeans-centroid": ScoreKind("distance to the centre", -1.0),
    "kmeans-pixels": ScoreKind("distance to the centre", -1.0),
}


def score_kind(strategy: str, params: dict[str, Any], cold_start: bool) -> ScoreKind | None:
    """The :class:`ScoreKind` of ``strategy``'s scores in a round with ``params`` (None: no
    per-image score, or a switch whose two strategies score differently)."""
    if cold_start and strategy in COLD_KINDS:
        return COLD_KINDS[strategy]
    if strategy in ("cluster-top", "diversity"):
        return KINDS.get(str(params.get("strategy") or "margin"))
    if strategy in SWITCHES:
        active = params.get("active")
        if isinstance(active, str):
            return KINDS.get(active)
        low, high = (KINDS.get(str(params.get(k, d))) for k, d in zip(
            ("low", "high"), SWITCHES[strategy], strict=True))
        return low if low == high else None
    return KINDS.get(strategy)


def number(x: float) -> str:
    """A score as a reader reads it: 2 decimals; 2 significant digits below 0.01; never
    scientific notation (below 0.0001: ``"< 0.0001"``)."""
    if x == 0 or abs(x) >= 0.01:
        return f"{x:.2f}"
    if abs(x) < 0.0001:
        return "< 0.0001" if x > 0 else "> -0.0001"
    return f"{x:.2g}"


#: What a score kind means where the sentence does not depend on the value or the classes.
FIXED_MEANING = {
    "BALD": "samples of the model (dropout) disagree about this image",
    "information gain": "labelling it is expected to sharpen the model's predictions the most",
    "EPIG": "labelling it is expected to improve predictions on the target images the most",
    "typicality": ("a typical member of a dense group of similar images (the inverse mean "
                   "distance to its nearest neighbours)"),
    "distance": "far from every labelled image: a region the labels do not cover yet",
    "gradient distance": "uncertain, and unlike the images picked before it",
    "variance": "the model's predictions change the most under augmentation",
    "unlabelled-ness": "looks least like the labelled images to VAAL's discriminator",
    "hardness": "the encoder finds it hard to tell apart from other images (hard to contrast)",
    "contrastive confidence": "the encoder tells it apart from other images easily",
}


def _meaning(kind: ScoreKind, value: float, probs: np.ndarray | None, classes: list[str],
             reveal: bool) -> str:
    top = [] if probs is None else [int(c) for c in np.argsort(-probs, kind="stable")[:2]]
    if kind.name == "margin":
        named = reveal and len(top) == 2
        if value <= TORN:
            return (f"the model is torn between {classes[top[0]]} and {classes[top[1]]}"
                    if named else "the model is torn between its two most likely classes "
                    "(named once you answer)")
        return (f"the model prefers {classes[top[0]]} to {classes[top[1]]} by this much "
                if named else "the gap between the model's two most likely classes ") + \
            "(0 = a tie, 1 = certain)"
    if kind.name == "least confidence":
        return f"the model's best guess has only {1 - value:.0%} probability"
    if kind.name == "entropy":
        return (f"the model's belief is spread over several classes (0 = certain, "
                f"{math.log(max(len(classes), 2)):.2f} = all {len(classes)} classes equally "
                "likely)")
    if kind.name == "coverage":
        return f"its neighbourhood covers {value:.0f} images no labelled image covers yet"
    return FIXED_MEANING.get(kind.name,
                             "the nearest image to its cluster's centre (a representative)")


def _cluster(params: dict[str, Any], image_id: int) -> int | None:
    clusters = params.get("clusters")
    if isinstance(clusters, dict):
        value = clusters.get(str(image_id))
        if isinstance(value, int):
            return value
    return None


def _cold_headline(strategy: str, params: dict[str, Any], image_id: int, n_picks: int) -> str:
    cluster = _cluster(params, image_id)
    clusters = params.get("n_clusters") or n_picks
    where = (f"cluster {cluster + 1} of {clusters}" if cluster is not None
             else f"one of {clusters} clusters of similar images")
    picks = {"typiclust": f"the most typical image of {where}",
             "hacon": f"the hardest-to-contrast image of {where}",
             "easy-to-contrast": f"the easiest-to-contrast image of {where}",
             "kmeans-centroid": f"the image nearest the centre of {where}",
             "kmeans-pixels": f"the image nearest the centre of {where} (pixel space)"}
    return "cold start: " + picks.get(strategy, STRATEGY_TEXT.get(strategy, f"chosen by "
                                                                            f"{strategy}"))


def explain_pick(*, strategy: str, params: dict[str, Any], purpose: str, score: float | None,
                 image_id: int, probs: np.ndarray | None, classes: list[str], reveal: bool,
                 n_picks: int) -> dict[str, str]:
    """Why one queued image is asked: ``{"headline", "score", "strategy"}`` (``score`` empty
    when there is none).

    Args:
        strategy, params: the round's strategy name and recorded parameters.
        purpose: ``acquire``, ``validation`` or ``second-read``.
        score: the strategy's recorded score of the image (None: rank only).
        probs: ``(C,)`` probabilities of the round's model for the image; None in a cold-start
            round (no model yet).
        reveal: whether the model's classes may be named to the reader now.
        n_picks: the round's strategy picks (K of a cold start's one-per-cluster pick).
    """
    cold = probs is None
    about = STRATEGY_TEXT.get(strategy, "the strategy's own ranking")
    what = f"{strategy}: {about}"
    if purpose in PURPOSE_TEXT:
        gap = f"confidence gap {number(score)}: how much more the model believes its own " \
              "class than the first reader's" if purpose == "second-read" and score is not \
            None else ""
        return {"headline": PURPOSE_TEXT[purpose], "score": gap, "strategy": what}
    headline = _cold_headline(strategy, params, image_id, n_picks) if cold else \
        f"chosen by {strategy}"
    kind = score_kind(strategy, params, cold)
    if score is None:
        text = "" if strategy == "random" else "no per-image score: the strategy ranks by " \
                                               "where it picks"
    elif kind is None:
        text = f"score {number(score)} (the strategy's own score: higher was picked first)"
    else:
        value = kind.sign * score
        text = f"{kind.name} {number(value)}{kind.unit}: " + _meaning(kind, value, probs,
                                                                      classes, reveal)
    return {"headline": headline, "score": text, "strategy": what}
