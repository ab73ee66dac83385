"""medactive as a MONAI Label active-learning strategy (``pip install "medactive[monailabel]"``).

MONAI Label asks a strategy for *one* next image (``POST /activelearning/<name>``: the app calls
``strategy(request, datastore)`` and expects ``{"id": image id, ...}``). Its own strategies are
Random, First and scoring-based ones (epistemic, TTA) that need a trained model's scores;
:class:`MedactiveStrategy` ranks the datastore's unlabelled images with medactive's defaults
(:mod:`medactive.integrations.ranking`) on cached encoder features
(:mod:`medactive.integrations.features`):

* **classes** come from the labels' info: an image whose label (tag ``label_tag``, default
  MONAI Label's ``final``) carries ``{class_key: "<class>"}`` in its info is labelled with that
  class, as a classification app saves it; give ``classes`` to fix their order and include
  classes nobody labelled yet. Once a label names a class (of ``classes``, or of two classes
  seen), medactive's default acquisition ranks the pool on the round's head, as a project's
  round does; before that, and for labels that are not classes (segmentations: neither trained
  on nor asked again), its label-free cold start does;
* **one image among several readers**: the top ``batch`` images are ranked, and the best one not
  served in the last ``hold_s`` seconds is returned (MONAI Label stamps every served image in its
  info, ``strategy.<name>.ts``), so two readers asking at once get different images; when all
  were served recently, the one served longest ago.

Register it in your app's ``init_strategies``::

    from medactive.integrations.monailabel import MedactiveStrategy

    def init_strategies(self):
        return {"medactive": MedactiveStrategy(cache_dir=os.path.join(self.app_dir, ".medactive"))}

The base class is MONAI Label's own (``monailabel.interfaces.tasks.strategy.Strategy``), so this
module imports only where MONAI Label is installed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import ConfigError
from medactive.integrations.features import N_SLICES, Encoder, FeatureCache
from medactive.integrations.ranking import rank_pool

log = logging.getLogger("medactive.monailabel")
BATCH = 10  # images ranked per request: a reader's choice among the strategy's top picks
HOLD_S = 600  # an image served this recently goes to nobody else (10 minutes of reading)


class MedactiveStrategy(Strategy):
    """Next image by medactive's acquisition on cached features (module docstring).

    Args:
        cache_dir: where the features of each image version are kept.
        classes: the class names in a fixed order (default: those found in the labels, sorted).
        class_key: the key of a label's info that names its class.
        label_tag: the label tag that counts as labelled (a request's ``label_tag`` wins).
        batch: how many top images to rank per request.
        hold_s: how long a served image is held back from other readers.
        acquisition, coldstart: medactive strategy names (default: medactive's defaults).
        n_slices: slices per volume for the features.
        encoder: ``(name, encode)`` overriding the default feature extractor.
        seed: the ranking's seed.
    """

    def __init__(self, cache_dir: str | Path, classes: Sequence[str] | None = None,
                 class_key: str = "label", label_tag: str = "final", batch: int = BATCH,
                 hold_s: float = HOLD_S, acquisition: str = DEFAULT_ACQUISITION,
                 coldstart: str = DEFAULT_COLDSTART, n_slices: int = N_SLICES,
                 encoder: tuple[str, Encoder] | None = None, seed: int = 0) -> None:
        super().__init__(f"medactive: {acquisition} once labels name classes, {coldstart} "
                         "before")
        if batch < 1:
            raise ConfigError(f"batch must be positive, got {batch}")
        if classes is not None and len(set(classes)) != len(classes):
            raise ConfigError(f"class names must be unique, got {list(classes)}")
        self.cache = FeatureCache(cache_dir, encoder, n_slices)
        self.classes = list(classes) if classes is not None else None
        self.class_key = class_key
        self.label_tag = label_tag
        self.batch = batch
        self.hold_s = hold_s
        self.acquisition = acquisition
        self.coldstart = coldstart
        self.seed = seed

    def class_of(self, datastore: Datastore, image_id: str, tag: str) -> str | None:
        """The class name in the info of ``image_id``'s label with ``tag``, or None."""
        label_id = datastore.get_labels_by_image_id(image_id).get(tag)
        if label_id is None:
            return None
        value = (datastore.get_label_info(label_id, tag) or {}).get(self.class_key)
        return str(value) if isinstance(value, (str, int)) and str(value) else None

    def rank(self, request: dict[str, Any], datastore: Datastore
             ) -> tuple[list[str], list[float | None], dict[str, Any]]:
        """The top unlabelled image ids in medactive's order, their scores, and what ranked
        them (``{"strategy", "labelled", "classes"}``)."""
        tag = request.get("label_tag") or self.label_tag
        wanted = request.get("labels")
        pool = sorted(datastore.get_unlabeled_images(tag, wanted))
        if not pool:
            return [], [], {}
        labelled = sorted(datastore.get_labeled_images(tag, wanted))
        ids = labelled + pool
        features = self.cache.features([datastore.get_image_uri(i) for i in ids])
        names = [self.class_of(datastore, i, tag) for i in labelled]
        classes = self.classes if self.classes is not None else sorted(
            {n for n in names if n is not None})
        index = {c: k for k, c in enumerate(classes)}
        labels = np.full(len(ids), -1, np.int64)
        for k, name in enumerate(names):
            labels[k] = index.get(name, -1) if name is not None else -1
        unknown = sorted({n for n in names if n is not None and n not in index})
        if unknown:
            log.warning("labels with classes outside %s are left out: %s", classes, unknown)
        labelled_mask = np.arange(len(ids)) < len(labelled)
        ranking = rank_pool(features, labelled_mask, labels, len(classes),
                            min(self.batch, len(pool)), self.seed, self.acquisition,
                            self.coldstart)
        order = [ids[int(k)] for k in ranking.order]
        scores: list[float | None] = [None] * len(order) if ranking.scores is None else \
            [float(s) for s in ranking.scores]
        return order, scores, {"strategy": ranking.strategy, "labelled": len(labelled),
                               "classes": len(classes)}

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        """MONAI Label's call: the next image, ``{"id", "medactive": {...}}``, or None when
        every image is labelled."""
        order, scores, about = self.rank(request, datastore)
        if not order:
            return None
        name = request.get("strategy", "medactive")
        now = time.time()
        served = [float(datastore.get_image_info(i).get("strategy", {}).get(name, {})
                        .get("ts", 0)) for i in order]
        fresh = [k for k, ts in enumerate(served) if now - ts >= self.hold_s]
        pick = fresh[0] if fresh else int(np.argmin(served))
        log.info("%s: image %s (rank %d of %d, %s)", name, order[pick], pick + 1, len(order),
                 about["strategy"])
        return {"id": order[pick], "medactive": {**about, "rank": pick + 1,
                                                 "score": scores[pick]}}
