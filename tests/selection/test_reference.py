"""The fast TypiClust and ProbCover against literal loop references that share no code."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medactive.geometry import l2_normalise, purity_radius
from medactive.selection import kmeans, probcover_rank, reference, typiclust_rank
from medactive.selection.reference import (
    probcover_reference,
    purity_radius_reference,
    typiclust_reference,
)


def test_references_import_nothing_from_the_fast_path() -> None:
    tree = ast.parse(inspect.getsource(reference))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "math", "numpy"}, imported


def _data(seed: int, n: int, d: int, labelled: int) -> tuple[np.ndarray, np.ndarray]:
    """Uneven Gaussian blobs (some clusters tiny) and a random labelled mask."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d)) * 3
    x = centres[rng.choice(4, n, p=[0.5, 0.3, 0.15, 0.05])] + rng.normal(size=(n, d))
    mask = np.zeros(n, bool)
    mask[rng.choice(n, labelled, replace=False)] = True
    return x.astype(np.float32), mask


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(12, 70), labelled=st.integers(0, 8),
       budget=st.integers(1, 12), knn=st.sampled_from([1, 3, 20]),
       min_cluster_size=st.sampled_from([0, 2, 5]), k_extra=st.sampled_from([None, 3]))
def test_typiclust_equals_reference(seed, n, labelled, budget, knn, min_cluster_size,
                                    k_extra) -> None:
    x, mask = _data(seed, n, 4, labelled)
    n_clusters = None if k_extra is None else int(mask.sum()) + budget + k_extra
    picked, typ = typiclust_rank(x, mask, budget, n_clusters=n_clusters, knn=knn,
                                 min_cluster_size=min_cluster_size, seed=seed)
    k = n_clusters or min(int(mask.sum()) + budget, 500)
    clusters, _ = kmeans(l2_normalise(x), k, seed)
    ref, ref_typ = typiclust_reference(x, mask, budget, clusters, knn=knn,
                                       min_cluster_size=min_cluster_size)
    assert picked.tolist() == ref
    np.testing.assert_allclose(typ, ref_typ, rtol=1e-4)


def test_typiclust_small_clusters_come_after_every_larger_one() -> None:
    # two blobs of 20 and one of 3: with budget 6 the budget cycles the two large blobs
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.05, (s, 3)) for c, s in
                        (((5, 0, 0), 20), ((0, 5, 0), 20), ((0, 0, 5), 3))]).astype(np.float32)
    picked, _ = typiclust_rank(x, np.zeros(43, bool), 6, n_clusters=3, seed=0)
    assert not np.isin(picked, np.arange(40, 43)).any()
    # once the large blobs are exhausted, the small one fills the rest
    picked, _ = typiclust_rank(x, np.zeros(43, bool), 43, n_clusters=3, seed=0)
    assert sorted(picked.tolist()) == list(range(43)) and set(picked[-3:]) == {40, 41, 42}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(10, 60), labelled=st.integers(0, 6),
       budget=st.integers(1, 10), delta=st.floats(0.05, 1.2), fill=st.sampled_from(["random",
                                                                                      "degree"]))
def test_probcover_equals_reference(seed, n, labelled, budget, delta, fill) -> None:
    x, mask = _data(seed, n, 3, labelled)
    budget = min(budget, n - int(mask.sum()))
    picked, gains = probcover_rank(x, mask, budget, n_pseudo_classes=2, delta=delta, fill=fill,
                                   seed=seed)
    ref, ref_gains = probcover_reference(x, mask, budget, delta, fill=fill, seed=seed)
    assert picked.tolist() == ref
    assert gains.tolist() == ref_gains


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.5, 0.95])
def test_purity_radius_equals_reference(seed: int, alpha: float) -> None:
    x, _ = _data(seed, 80, 3, 0)
    pseudo, _ = kmeans(l2_normalise(x), 4, seed)
    fast = purity_radius(l2_normalise(x), pseudo, alpha, sample=50, seed=seed)
    slow = purity_radius_reference(x, pseudo, alpha, sample=50, seed=seed)
    assert fast == pytest.approx(slow, rel=1e-5)
