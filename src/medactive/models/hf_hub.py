"""Where an ``hf:`` encoder's config and weights are: a local folder, one weights file, or a
Hugging Face hub snapshot (cached by ``huggingface_hub``; only the cache when offline).

Split from :mod:`medactive.models.hf` (the model and its preprocessing), which uses
:func:`locate` and :func:`weight_files`; nothing here imports ``transformers``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from medactive.errors import ConfigError
from medactive.models.weights import WEIGHT_SUFFIXES

INSTALL_HINT = 'pip install "medactive[encoders]"'
#: What a hub snapshot needs: configs and weights (safetensors; ``.bin`` only when a model has
#: no safetensors, fetched then).
_HUB_PATTERNS = ["*.json", "*.safetensors"]
_FALLBACK_PATTERNS = ["*.json", "pytorch_model*.bin"]


def require_transformers() -> None:
    """Raise :class:`ConfigError` with the install command unless ``transformers`` is there
    (a ``find_spec``: no import, microseconds)."""
    for package in ("transformers", "huggingface_hub", "safetensors"):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"hf: encoders need the optional package {package}; install it "
                              f"with: {INSTALL_HINT}")


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` forbid the hub (read at call
    time, so a process may set them after importing ``huggingface_hub``)."""
    flags = [os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", "")]
    if any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@dataclass(frozen=True)
class HFSource:
    """Where an ``hf:`` encoder's config and weights are.

    Attributes:
        model: the name after ``hf:`` (hub id or folder).
        folder: the folder holding ``config.json`` (a local folder or a hub snapshot).
        weights_file: a single state-dict file replacing the folder's weights, or None.
        revision: the hub commit of a snapshot (None for local folders).
    """

    model: str
    folder: Path
    weights_file: Path | None = None
    revision: str | None = None


def _offline_error(model: str, why: str) -> ConfigError:
    return ConfigError(
        f"hf:{model} is not on this machine and cannot be downloaded ({why}); download it where "
        f"there is network (`hf download {model} --local-dir FOLDER`), copy FOLDER here and pass "
        "--encoder-weights FOLDER")


def _snapshot(model: str, patterns: list[str], local_only: bool,
              revision: str | None = None) -> Path:
    """The hub snapshot folder of ``model`` at ``revision`` (default: the latest) with
    ``patterns`` (downloaded unless ``local_only``).

    Raises:
        ConfigError: unknown or gated model, bad id, or not cached while offline.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(str(snapshot_download(model, allow_patterns=patterns,
                                          local_files_only=local_only, revision=revision)))
    except HFValidationError:
        raise ConfigError(f"hf:{model}: neither an existing folder nor a Hugging Face hub id "
                          "(ORG/NAME)") from None
    except GatedRepoError:
        raise ConfigError(f"hf:{model} is gated: accept its licence on huggingface.co and log "
                          "in (`hf auth login`), or pass --encoder-weights FOLDER") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"hf:{model}: the Hugging Face hub has no such model (or it is "
                          "private: log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise ConfigError(f"hf:{model}: revision {revision} not found on the hub") from None
    except LocalEntryNotFoundError as exc:
        why = "offline mode (HF_HUB_OFFLINE)" if local_only else \
            f"no network: {str(exc).splitlines()[-1][:100]}"
        raise _offline_error(model, why) from None
    except (OSError, ConnectionError) as exc:  # httpx / socket errors reaching the hub
        raise _offline_error(model, f"{type(exc).__name__}: {str(exc)[:100]}") from None


def locate(model: str, weights: Path | None, *, download: bool,
           revision: str | None = None) -> HFSource:
    """Find ``hf:model``'s config (and weights) on disk, fetching from the hub when needed.

    Args:
        model: hub id or folder (the part after ``hf:``).
        weights: ``--encoder-weights`` (a folder with ``config.json``, or one weights file).
        download: fetch the weights too (False: ``config.json`` is enough — the cheap check).
        revision: the hub commit to use (a project pins the one it started with, so a new
            upload of the model never changes its features half-way); default the latest.

    Raises:
        ConfigError: see :func:`_snapshot`; a folder without ``config.json``; a missing path.
    """
    require_transformers()
    if weights is not None and Path(weights).is_dir():
        folder = Path(weights).resolve()
        _need_config(folder, "--encoder-weights")
        return HFSource(model, folder)
    local = Path(model).expanduser()
    if local.is_dir():
        folder = local.resolve()
        _need_config(folder, f"hf:{model}")
    elif any(model.startswith(p) for p in ("/", "./", "../", "~")):
        raise ConfigError(f"hf:{model}: no such folder")
    else:
        folder = _hub_folder(model, download and weights is None, revision)
    return HFSource(model, folder, None if weights is None else Path(weights).resolve(),
                    folder.name if "snapshots" in folder.parts else None)


def _hub_folder(model: str, with_weights: bool, revision: str | None) -> Path:
    """The snapshot of a hub id: the cached one when offline, else fetched (config only, or
    config + weights)."""
    local_only = offline()
    if not with_weights:
        try:  # a cached config is enough for the check: no network call at all
            return _snapshot(model, ["config.json"], True, revision)
        except ConfigError:
            if local_only:
                raise
        return _snapshot(model, ["config.json"], False, revision)
    folder = _snapshot(model, _HUB_PATTERNS, local_only, revision)
    if not weight_files(folder):
        folder = _snapshot(model, _FALLBACK_PATTERNS, local_only, revision)
    if not weight_files(folder):
        raise _offline_error(model, "no weights file in the cached copy") if local_only else \
            ConfigError(f"hf:{model}: the hub model has no safetensors or pytorch_model.bin "
                        "weights")
    return folder


def _need_config(folder: Path, what: str) -> None:
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{what} {folder} has no config.json (save the model with "
                          "save_pretrained, or download it with `hf download ORG/NAME "
                          "--local-dir FOLDER`)")


def weight_files(folder: Path) -> list[Path]:
    """The weights files directly in ``folder`` (safetensors, PyTorch)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES
                  and not p.name.startswith("training_args"))
