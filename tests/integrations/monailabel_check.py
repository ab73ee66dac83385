"""medactive's MONAI Label strategy against the real ``monailabel`` package: a real
``LocalDatastore`` of 2-D images (BloodMNIST PNGs) and of 3-D volumes (NIfTI), real labels saved
through the datastore, the strategy called as MONAI Label's app calls it, with the real
EfficientNet-Lite0 encoder.

Run by tests/integrations/test_monailabel.py in MONAI Label's own environment
(``.venv-monailabel``, ``make monailabel-env``): ``python monailabel_check.py BLOODMNIST.npz
WORKDIR``. Prints one JSON line of facts; any failed check raises (exit code 1).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.tasks.strategy import Strategy
from PIL import Image

from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.integrations.features import DEFAULT_ENCODER, default_encoder
from medactive.integrations.monailabel import MedactiveStrategy

N_PNG = 40
N_VOLUMES = 6


class CountingEncoder:
    """The real default encoder, counting the images it encodes (to check the cache)."""

    def __init__(self) -> None:
        self.encode = default_encoder()
        self.images = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.images += len(images)
        return self.encode(images)


def save_label(store: LocalDatastore, work: Path, image_id: str, info: dict) -> None:
    """A label as a MONAI Label client saves one (a file plus its info), tag ``final``."""
    label = work / f"label-{image_id}.json"
    label.write_text(json.dumps(info))
    store.save_label(image_id, str(label), "final", info)


def serve(strategy: Strategy, store: LocalDatastore, name: str = "medactive") -> dict:
    """What MONAI Label's /activelearning/<name> endpoint does: call, then stamp the image."""
    result = strategy({"strategy": name}, store)
    if result:
        info = store.get_image_info(result["id"]).get("strategy", {})
        info[name] = {"ts": int(time.time()), "client_id": "reader"}
        store.update_image_info(result["id"], {"strategy": info})
    return result


def check_2d(npz: Path, work: Path) -> dict:
    data = np.load(npz)
    images, labels = data["train_images"][:N_PNG], data["train_labels"][:N_PNG].ravel()
    folder = work / "png"
    folder.mkdir()
    for k, img in enumerate(images):
        Image.fromarray(img).save(folder / f"cell{k:03d}.png")
    store = LocalDatastore(str(folder), extensions=["*.png"], auto_reload=False)
    ids = sorted(store.list_images())
    assert len(ids) == N_PNG, ids
    encoder = CountingEncoder()
    strategy = MedactiveStrategy(work / "cache-png", encoder=(DEFAULT_ENCODER, encoder),
                                 hold_s=600)

    cold = serve(strategy, store)  # nothing labelled: the cold start
    assert cold["medactive"]["strategy"] == DEFAULT_COLDSTART, cold
    assert encoder.images == N_PNG  # every image encoded once
    second = serve(strategy, store)
    assert second["id"] != cold["id"], "an image served a moment ago went out again"
    assert encoder.images == N_PNG  # the cache served the second call

    names = {k: f"class-{labels[k]}" for k in range(N_PNG)}
    labelled = [i for i in ids[:12]]
    for image_id in labelled:
        save_label(store, work, image_id, {"label": names[ids.index(image_id)]})
    classes = sorted({names[ids.index(i)] for i in labelled})
    assert len(classes) >= 2, classes
    warm = serve(strategy, store)
    assert warm["medactive"]["strategy"] == DEFAULT_ACQUISITION, warm
    assert warm["id"] not in labelled and warm["medactive"]["labelled"] == len(labelled)
    order, _, _ = strategy.rank({"strategy": "medactive"}, store)
    assert not set(order) & set(labelled) and len(order) == strategy.batch

    for image_id in ids:  # everything labelled: nothing left to ask
        if image_id not in labelled:
            save_label(store, work, image_id, {"label": names[ids.index(image_id)]})
    assert serve(strategy, store) is None
    return {"cold": cold["id"], "second": second["id"], "warm": warm["id"],
            "classes": len(classes), "encoded": encoder.images}


def check_volumes(work: Path) -> dict:
    folder = work / "nifti"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(N_VOLUMES):
        # a bright sphere of varying size and place in noise, as a CT-like float volume
        grid = np.stack(np.meshgrid(*[np.arange(32)] * 3, indexing="ij"), -1).astype(float)
        centre = rng.uniform(8, 24, 3)
        volume = 1000 * (np.linalg.norm(grid - centre, axis=-1) < 4 + k) + rng.normal(0, 50,
                                                                                      (32,) * 3)
        nib.save(nib.Nifti1Image(volume.astype(np.float32), np.eye(4)),
                 str(folder / f"case{k}.nii.gz"))
    store = LocalDatastore(str(folder), auto_reload=False)
    encoder = CountingEncoder()
    strategy = MedactiveStrategy(work / "cache-nifti", encoder=(DEFAULT_ENCODER, encoder))
    first = serve(strategy, store)
    assert first["medactive"]["strategy"] == DEFAULT_COLDSTART
    assert encoder.images == 5 * N_VOLUMES, encoder.images  # five slices per volume
    save_label(store, work, first["id"], {})  # a segmentation: labelled, no class
    after = serve(strategy, store)
    assert after["id"] != first["id"] and after["medactive"]["labelled"] == 1
    return {"first": first["id"], "after": after["id"], "slices": encoder.images}


def main() -> None:
    npz, work = Path(sys.argv[1]), Path(sys.argv[2])
    facts = {"png": check_2d(npz, work), "nifti": check_volumes(work)}
    import monailabel
    import torch

    facts["versions"] = {"monailabel": monailabel.__version__, "torch": torch.__version__}
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
