"""The registry of 2-D multi-class MedMNIST subsets, and where medactive keeps its cache.

Each :class:`MedMNISTInfo` holds what the official release publishes for one subset: class
names, channels, split sizes, the MD5 of its 28 px file and its URL. :func:`identify_medmnist`
recognises a file by its content (split sizes, channels, labels), never by its name.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from medactive.errors import DataError

ZENODO = "https://zenodo.org/records/10519652/files/{name}.npz?download=1"
LICENSE = "CC BY 4.0"
CITATION = "Yang et al., MedMNIST v2, Scientific Data 2023 (plus each source dataset's paper)"


@dataclass(frozen=True)
class MedMNISTInfo:
    """Registry entry of one 2-D MedMNIST subset (28x28 release)."""

    name: str
    class_names: tuple[str, ...]
    channels: int
    md5: str
    modality: str
    n_samples: tuple[int, int, int]
    license: str = LICENSE

    @property
    def url(self) -> str:
        """Official download URL (Zenodo, MedMNIST v3 record)."""
        return ZENODO.format(name=self.name)


_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
           "liver", "lung-left", "lung-right", "pancreas", "spleen")

MEDMNIST: dict[str, MedMNISTInfo] = {
    info.name: info
    for info in [
        MedMNISTInfo("pathmnist", ("adipose", "background", "debris", "lymphocytes", "mucus",
                     "smooth muscle", "normal colon mucosa", "cancer-associated stroma",
                     "colorectal adenocarcinoma epithelium"), 3,
                     "a8b06965200029087d5bd730944a56c1", "colon pathology", (89996, 10004, 7180)),
        MedMNISTInfo("dermamnist", ("actinic keratoses and intraepithelial carcinoma",
                     "basal cell carcinoma", "benign keratosis-like lesions", "dermatofibroma",
                     "melanoma", "melanocytic nevi", "vascular lesions"), 3,
                     "0744692d530f8e62ec473284d019b0c7", "dermatoscopy", (7007, 1003, 2005)),
        MedMNISTInfo("octmnist", ("choroidal neovascularization", "diabetic macular edema",
                     "drusen", "normal"), 1, "c68d92d5b585d8d81f7112f81e2d0842",
                     "retinal OCT", (97477, 10832, 1000)),
        MedMNISTInfo("pneumoniamnist", ("normal", "pneumonia"), 1,
                     "28209eda62fecd6e6a2d98b1501bb15f", "chest X-ray", (4708, 524, 624)),
        MedMNISTInfo("retinamnist", ("0", "1", "2", "3", "4"), 3,
                     "bd4c0672f1bba3e3a89f0e4e876791e4", "fundus (DR grade)", (1080, 120, 400)),
        MedMNISTInfo("breastmnist", ("malignant", "normal, benign"), 1,
                     "750601b1f35ba3300ea97c75c52ff8f6", "breast ultrasound", (546, 78, 156)),
        MedMNISTInfo("bloodmnist", ("basophil", "eosinophil", "erythroblast",
                     "immature granulocytes (myelocytes, metamyelocytes, promyelocytes)",
                     "lymphocyte", "monocyte", "neutrophil", "platelet"), 3,
                     "7053d0359d879ad8a5505303e11de1dc", "blood cell microscopy",
                     (11959, 1712, 3421)),
        MedMNISTInfo("tissuemnist", ("Collecting Duct, Connecting Tubule",
                     "Distal Convoluted Tubule", "Glomerular endothelial cells",
                     "Interstitial endothelial cells", "Leukocytes", "Podocytes",
                     "Proximal Tubule Segments", "Thick Ascending Limb"), 1,
                     "ebe78ee8b05294063de985d821c1c34b", "kidney cortex microscopy",
                     (165466, 23640, 47280)),
        MedMNISTInfo("organamnist", _ORGANS, 1, "866b832ed4eeba67bfb9edee1d5544e6",
                     "abdominal CT (axial)", (34581, 6491, 17778)),
        MedMNISTInfo("organcmnist", _ORGANS, 1, "0afa5834fb105f7705a7d93372119a21",
                     "abdominal CT (coronal)", (13000, 2392, 8268)),
        MedMNISTInfo("organsmnist", _ORGANS, 1, "e5c39f1af030238290b9557d9503af9d",
                     "abdominal CT (sagittal)", (13940, 2452, 8829)),
    ]
}

MULTI_LABEL = {"chestmnist"}

def cache_dir() -> Path:
    """The user cache directory for datasets and encoders (``$MEDACTIVE_CACHE_DIR`` overrides)."""
    env = os.environ.get("MEDACTIVE_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("medactive"))


def file_digest(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes (read in chunks, so any size fits in memory)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5sum(path: Path) -> str:
    """Hex MD5 of a file (MedMNIST's published checksums are MD5)."""
    return file_digest(path, "md5")


def registry_entry(name: str) -> MedMNISTInfo:
    """The registered subset called ``name`` (any case).

    Raises:
        DataError: a multi-label subset, or a name not registered.
    """
    key = name.lower()
    if key in MULTI_LABEL:
        raise DataError(
            f"{name} is multi-label (14 binary findings per image); medactive's strategies need "
            "one label per image — pick a multi-class subset"
        )
    if key not in MEDMNIST:
        raise DataError(
            f"unknown dataset {name!r}; known MedMNIST subsets: {', '.join(sorted(MEDMNIST))} "
            "(or pass a path to an .npz file / a CSV of an image folder)"
        )
    return MEDMNIST[key]


def identify_medmnist(sizes: tuple[int, int, int], channels: int,
                     top_label: int) -> MedMNISTInfo | None:
    """The registered subset whose content this is, judged by the content alone: the numbers of
    train / val / test images, the channels, and labels within its classes (any image size, so
    the 64/128/224 px MedMNIST+ releases match too). None when nothing matches.

    The file name is never consulted: a renamed copy keeps its class names, and a file that
    merely carries a registered name does not get them.

    Args:
        sizes: ``(n_train, n_val, n_test)``.
        channels: 1 or 3.
        top_label: the largest label over all splits (-1 when there is none).
    """
    for info in MEDMNIST.values():
        if info.n_samples == tuple(sizes) and info.channels == channels \
                and top_label < len(info.class_names):
            return info
    return None
