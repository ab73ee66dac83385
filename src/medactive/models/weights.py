"""Weights files of pretrained encoders: what is in them (cheaply), reading them, their digest.

* :func:`peek_state_dict` — tensor names and shapes of a checkpoint without reading its data
  (a safetensors header, or a memory-mapped PyTorch zip): milliseconds even for a large file, so
  ``--encoder-weights`` can be checked before minutes of work.
* :func:`read_state_dict` — the tensors, on CPU (PyTorch files with ``weights_only=True``: no
  code in a checkpoint ever runs).
* :func:`file_digest_memo` — a content hash of a weights file or folder for cache keys, memoised
  by (path, size, modification time) so a 350 MB file is hashed once, not every query.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import torch

from medactive.errors import ConfigError

#: File names a weights folder may hold (safetensors first: no pickle involved).
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
# what torch.load raises on a file that is not a checkpoint (its weights-only unpickler reads
# arbitrary bytes as opcodes and can fail with almost anything)
_TORCH_READ_ERRORS = (OSError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
                      pickle.UnpicklingError, AttributeError, KeyError, IndexError, TypeError,
                      UnicodeDecodeError)


def _not_a_checkpoint(path: Path, detail: str) -> ConfigError:
    return ConfigError(f"--encoder-weights {path}: not a weights checkpoint ({detail})")


def peek_state_dict(path: Path) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of the checkpoint ``path`` without reading its tensors.

    A PyTorch file may hold ``{"state_dict": {...}}`` (Lightning and many training scripts)
    or ``{"model": {...}}``; the inner dict is returned.

    Raises:
        ConfigError: ``path`` is not a safetensors or PyTorch checkpoint of tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        except ImportError:
            raise ConfigError('reading .safetensors needs the safetensors package: '
                              'pip install "medactive[encoders]"') from None
        except Exception as exc:  # safetensors raises its own SafetensorError on a bad header
            raise _not_a_checkpoint(path, f"{type(exc).__name__}: {exc}") from None
    return {k: tuple(v.shape) for k, v in _torch_tensors(path, mmap=True).items()}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint ``path`` on CPU (see :func:`peek_state_dict`).

    Raises:
        ConfigError: not a checkpoint.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        peek_state_dict(path)  # one clear error for a bad file
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return _torch_tensors(path, mmap=False)


def _torch_tensors(path: Path, mmap: bool) -> dict[str, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
        # mmap needs the zip format (torch >= 1.6); older pickled files are read whole
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except _TORCH_READ_ERRORS as exc:
        raise _not_a_checkpoint(path, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                                ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise _not_a_checkpoint(path, "it holds no dict of named tensors")
    return obj


def _hash_file(path: Path, h: hashlib._Hash, chunk: int = 1 << 22) -> None:
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)


def file_digest_memo(path: Path, memo: Path | None) -> str:
    """SHA-256 (24 hex digits) of the file ``path``, or of every file of the folder ``path``
    (names and bytes, sorted by name).

    Args:
        memo: a JSON file remembering digests by (absolute path, size, mtime) of each file;
            None hashes every time.
    """
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stamp = json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    known: dict[str, str] = {}
    if memo is not None:
        try:
            known = json.loads(memo.read_text())
        except (OSError, ValueError):
            known = {}
    stamp_key = hashlib.sha256(stamp.encode()).hexdigest()
    if stamp_key in known:
        return known[stamp_key]
    h = hashlib.sha256()
    for p in files:
        if path.is_dir():  # which file holds what matters in a folder; a file's name does not
            h.update(str(p.relative_to(path)).encode() + b"\0")
        _hash_file(p, h)
    digest = h.hexdigest()[:24]
    if memo is not None:
        known[stamp_key] = digest
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(memo.name + f".{id(known)}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(memo)  # concurrent writers: the last rename wins; a lost entry re-hashes
    return digest
