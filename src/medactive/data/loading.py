"""One entry point for any dataset spec: a MedMNIST name or ``.npz`` path, or an image-folder CSV."""

from __future__ import annotations

from pathlib import Path

from medactive.data.dataset import DatasetSplits


def load_dataset(spec: str | Path, **kwargs: object) -> DatasetSplits:
    """Load ``spec``: a ``.csv`` (image folder + labels, see ``medactive.data.folder``) or a
    MedMNIST name / ``.npz`` path (see ``medactive.data.medmnist``)."""
    if str(spec).lower().endswith(".csv"):
        from medactive.data.folder import load_folder_splits

        return load_folder_splits(spec, **kwargs)  # type: ignore[arg-type]
    from medactive.data.medmnist import load_medmnist

    return load_medmnist(spec, **kwargs)  # type: ignore[arg-type]
