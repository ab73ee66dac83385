""""Why this image" (issue 20, item 6): every strategy is described, the recorded score is shown
as the quantity it stands for, and the model's classes are named only when the reader may see
the model's guess."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medactive.annotate.why import STRATEGY_TEXT, explain_pick, number, score_kind

CLASSES = ["basophil", "eosinophil", "lymphocyte", "platelet"]


def _explain(**kw) -> dict[str, str]:
    base = {"strategy": "margin", "params": {}, "purpose": "acquire", "score": -0.03,
            "image_id": 7, "probs": np.array([0.1, 0.46, 0.43, 0.01]), "classes": CLASSES,
            "reveal": False, "n_picks": 20}
    return explain_pick(**{**base, **kw})


def test_every_registered_strategy_is_described() -> None:
    from medactive.coldstart.base import list_coldstart_strategies
    from medactive.strategies import list_strategies

    names = set(list_strategies()) | set(list_coldstart_strategies())
    assert names - set(STRATEGY_TEXT) == set()


def test_margin_shown_as_the_gap_the_strategy_ranked_by() -> None:
    """The Margin strategy's own score of an image, read back as the margin: equal to the gap
    between the two largest probabilities, computed here by sorting (no code shared)."""
    from tests.strategies.helpers import random_view

    from medactive.strategies import get_strategy

    view = random_view(seed=3, c=4)
    scores = get_strategy("margin").score(view)
    probs = view.pool_probabilities
    k = int(np.argmax(scores))
    top = sorted(probs[k].tolist(), reverse=True)
    shown = _explain(score=float(scores[k]), probs=probs[k], reveal=True)["score"]
    assert shown.startswith(f"margin {number(top[0] - top[1])}")
    first, second = (CLASSES[int(c)] for c in np.argsort(-probs[k])[:2])
    if top[0] - top[1] <= 0.2:
        assert shown.endswith(f"torn between {first} and {second}")


def test_classes_named_only_when_the_guess_may_be_seen() -> None:
    hidden = _explain()["score"]
    assert hidden == ("margin 0.03: the model is torn between its two most likely classes "
                      "(named once you answer)")
    assert "eosinophil" not in hidden
    assert _explain(reveal=True)["score"] == ("margin 0.03: the model is torn between "
                                              "eosinophil and lymphocyte")
    wide = _explain(score=-0.7, reveal=True)["score"]
    assert wide == ("margin 0.70: the model prefers eosinophil to lymphocyte by this much "
                    "(0 = a tie, 1 = certain)")
    assert _explain(score=-0.0005)["score"].startswith("margin 0.0005:")  # small, not 0.00
    assert _explain(score=-9.9e-5)["score"].startswith("margin < 0.0001:")  # never 9.9e-05


def test_cold_start_names_the_cluster() -> None:
    cold = {"strategy": "typiclust", "probs": None, "score": 4.2}
    out = _explain(**cold, params={"clusters": {"7": 2}}, n_picks=24)
    assert out["headline"] == "cold start: the most typical image of cluster 3 of 24"
    assert out["score"].startswith("typicality 4.20: a typical member of a dense group")
    assert _explain(**cold, n_picks=24)["headline"] == (
        "cold start: the most typical image of one of 24 clusters of similar images")
    none = _explain(**{**cold, "score": None}, n_picks=24)
    assert none["score"] == "no per-image score: the strategy ranks by where it picks"
    centroid = _explain(strategy="kmeans-centroid", probs=None, score=-0.25)
    assert centroid["score"].startswith("distance to the centre 0.25:")


@pytest.mark.parametrize(("strategy", "score", "start"), [
    ("entropy", 1.2, f"entropy 1.20 nats: the model's belief is spread over several classes "
                     f"(0 = certain, {math.log(4):.2f} = all 4 classes equally likely)"),
    ("least-confidence", 0.55, "least confidence 0.55: the model's best guess has only 45% "),
    ("aeig", 0.031, "information gain 0.03 nats: labelling it is expected to sharpen"),
    ("bald", 0.2, "BALD 0.20 nats: samples of the model (dropout) disagree"),
    ("probcover", 17.0, "coverage 17.00: its neighbourhood covers 17 images"),
    ("cluster-margin-then-margin", -0.02, "margin 0.02: the model is torn"),
])
def test_each_score_reads_as_its_quantity(strategy: str, score: float, start: str) -> None:
    assert _explain(strategy=strategy, score=score)["score"].startswith(start)


def test_switch_with_two_kinds_of_score_stays_generic() -> None:
    assert score_kind("typiclust-margin", {}, False) is None
    out = _explain(strategy="typiclust-margin", score=0.5)["score"]
    assert out == "score 0.50 (the strategy's own score: higher was picked first)"
    assert score_kind("typiclust-margin", {"active": "margin"}, False).name == "margin"
    assert score_kind("cluster-top", {"strategy": "entropy"}, False).name == "entropy"


def test_purposes() -> None:
    val = _explain(purpose="validation", score=None)
    # cross-fitting trains on the sample too: the page says what stays true in every mode
    assert val["headline"].startswith("validation sample: a uniformly random draw — each such "
                                      "image is scored by a model that never saw its label")
    assert "never trained on" not in val["headline"]
    assert val["score"] == ""
    second = _explain(purpose="second-read", score=0.42)
    assert second["headline"].startswith("second read: the model disagrees")
    assert second["score"].startswith("confidence gap 0.42")
    assert "eosinophil" not in second["headline"] + second["score"]  # a blind second read
