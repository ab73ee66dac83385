"""The hostile or careless inputs of issue 21, as a probe set shared by the regression tests
(``tests/test_hostile_inputs.py``) and a replay script (run this file).

Each probe builds its files in a fresh folder, names the ``medactive`` command line a user would
type, and says what must hold: exit code 2, exactly one ``error: ...`` line on stderr naming the
problem, no traceback, and nothing written or left behind (``forbidden`` paths). Probes whose
command would do minutes of work on a broken build are first screened by a cheap library call
(``precheck``), so a regression fails the test in seconds instead of exhausting memory.

Replay (every probe in a subprocess, under a 3 GiB address-space limit and a 120 s timeout,
printing one line per probe and the count that hold):

    PYTHONPATH=src .venv/bin/python tests/hostile.py
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format
from PIL import Image

BLOOD_SIZES = (11959, 1712, 3421)


@dataclass
class Case:
    """One probe after set-up: the command line, what the error must say, what must not
    exist afterwards, and extra environment variables."""

    argv: list[str]
    expect: str
    forbidden: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    precheck: Callable[[], None] | None = None  # must raise a MedactiveError


@dataclass(frozen=True)
class Probe:
    """A named input of issue 21 and how to set it up in a folder."""

    name: str
    setup: Callable[[Path, Path], Case]  # (work folder, bloodmnist.npz) -> Case


# ---------------------------------------------------------------------------------- files

def synthetic_npz(path: Path, n: int = 12, size: int = 12) -> Path:
    """A small valid MedMNIST-layout file: 3 classes, RGB ``size`` px, ``n`` per split."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).astype(np.uint8)[:, None]
    np.savez(path, **arrays)
    return path


def _header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                            "shape": shape})
    return buf.getvalue()


def lying_npz(path: Path) -> Path:
    """``train_images`` claims (300000, 1000, 1000, 1) uint8 = 279 GiB with 4 KB of data."""
    synthetic_npz(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["train_images.npy"] = _header((300000, 1000, 1000, 1)) + b"\0" * 4096
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def bomb_npz(path: Path, mib: int = 64) -> Path:
    """A deflate bomb: ``train_images`` of ``mib`` MiB of zeros as (N, 28, 28, 3) images,
    compressed about 1000x (labels to match, so the file is otherwise valid)."""
    n = (mib << 20) // (28 * 28 * 3)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("train_images.npy", "w", force_zip64=True) as out:
            out.write(_header((n, 28, 28, 3)))
            block = bytes(28 * 28 * 3 * 1024)
            for start in range(0, n, 1024):
                out.write(block[: 28 * 28 * 3 * min(1024, n - start)])
        buf = io.BytesIO()
        np.save(buf, np.zeros((n, 1), np.uint8))
        zf.writestr("train_labels.npy", buf.getvalue())
        for split in ("val", "test"):
            for key, array in ((f"{split}_images", np.zeros((4, 28, 28, 3), np.uint8)),
                               (f"{split}_labels", np.zeros((4, 1), np.uint8))):
                buf = io.BytesIO()
                np.save(buf, array)
                zf.writestr(f"{key}.npy", buf.getvalue())
    return path


def image_folder(folder: Path, n: int = 8, size: int = 10) -> Path:
    """``n`` small RGB PNGs named ``img0.png``..."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png")
    return folder


def config(path: Path, npz: Path, extra: str = "", run: str = "", model: str = "",
           initial: str = "budget = 3", encoding: str = "utf-8") -> Path:
    """A tiny experiment config on ``npz`` (random encoder, seconds to run)."""
    text = f"""name = "probe"
{extra}
[dataset]
source = "{npz}"
[model]
encoder = "random"
{model}
[model.head]
epochs = 5
[initial]
{initial}
[acquisition]
strategies = ["random"]
rounds = 1
budget = 3
[run]
repeats = 1
reference = false
{run}
"""
    path.write_text(text, encoding=encoding)
    return path


# ---------------------------------------------------------------------------------- probes

def _coldstart(data: str | Path, out: Path, *extra: str) -> list[str]:
    return ["coldstart", "--data", str(data), "--budget", "2", "--epochs", "1",
            "--batch-size", "8", "--out", str(out), "--no-progress", *extra]


def _cache(work: Path) -> dict[str, str]:
    return {"MEDACTIVE_CACHE_DIR": str(work / "cache")}


def csv_escape(work: Path, _: Path) -> Case:
    """A folder CSV row ``../../outside.png`` must not load an image outside the folder."""
    folder = image_folder(work / "data" / "imgs")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(work / "outside.png")
    rows = [f"img{i}.png,{i % 2}" for i in range(8)] + ["../../outside.png,1"]
    (folder / "list.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    out = work / "sel.csv"
    return Case(_coldstart(folder / "list.csv", out), "leaves the image root",
                [out, work / "cache" / "encoders"], _cache(work))


def csv_absolute(work: Path, _: Path) -> Case:
    """A folder CSV row ``/etc/passwd`` is refused before the file is opened."""
    folder = image_folder(work / "imgs")
    rows = [f"img{i}.png,{i % 2}" for i in range(8)] + ["/etc/passwd,1"]
    (folder / "list.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    out = work / "sel.csv"
    return Case(_coldstart(folder / "list.csv", out), "is an absolute path",
                [out, work / "cache" / "encoders"], _cache(work))


def absurd_repeats(work: Path, _: Path) -> Case:
    """``repeats = 1000000000000`` is refused before anything is allocated or written."""
    from medactive.experiment import load_config

    cfg = config(work / "c.toml", synthetic_npz(work / "d.npz"), run="", initial="budget = 3")
    cfg.write_text(cfg.read_text().replace("repeats = 1", "repeats = 1000000000000"))
    out = work / "run"
    return Case(["run", str(cfg), "--out", str(out), "--quiet"], "the plan trains",
                [out / "config.json"], _cache(work), precheck=lambda: load_config(cfg))


def deflate_bomb(work: Path, _: Path) -> Case:
    """64 MiB of zeros deflated to ~64 KB: refused by its ratio, nothing allocated."""
    return Case(["data", "info", str(bomb_npz(work / "bomb.npz"))], "decompression bomb")


def deflate_bomb_coldstart(work: Path, _: Path) -> Case:
    """The same bomb given to ``coldstart --limit 100``."""
    out = work / "sel.csv"
    return Case(_coldstart(bomb_npz(work / "bomb.npz"), out, "--limit", "100"),
                "decompression bomb", [out, work / "cache" / "encoders"], _cache(work))


def lying_header(work: Path, _: Path) -> Case:
    """A header claiming 279 GiB with 4 KB of data: refused without allocating."""
    return Case(["data", "info", str(lying_npz(work / "lie.npz"))], "its header declares")


def out_into_file(work: Path, blood: Path) -> Case:
    """``coldstart --out a-file/sel.csv``: refused before pre-training."""
    (work / "a-file").write_text("mine")
    return Case(_coldstart(blood, work / "a-file" / "sel.csv", "--limit", "16"),
                "is a file, not a folder", [work / "cache" / "encoders"], _cache(work))


def out_at_directory(work: Path, blood: Path) -> Case:
    """``coldstart --out a-dir``: refused before pre-training, no ``a-dir.part`` left."""
    (work / "a-dir").mkdir()
    return Case(_coldstart(blood, work / "a-dir", "--limit", "16"), "is a folder",
                [work / "a-dir.part", work / "cache" / "encoders"], _cache(work))


def out_unwritable(work: Path, blood: Path) -> Case:
    """``coldstart --out /proc/...``: a place nobody can write, refused before pre-training
    (a probe file, not the permission bits: the tests may run as root)."""
    return Case(_coldstart(blood, Path("/proc/medactive-probe/sel.csv"), "--limit", "16"),
                "not writable", [work / "cache" / "encoders"], _cache(work))


def budget_inf(work: Path, _: Path) -> Case:
    """``budget = inf``: one line naming the key, no config.json."""
    cfg = config(work / "c.toml", synthetic_npz(work / "d.npz"), initial="budget = inf")
    out = work / "run"
    return Case(["run", str(cfg), "--out", str(out), "--quiet"], "initial.budget",
                [out / "config.json"], _cache(work))


def seed_huge(work: Path, _: Path) -> Case:
    """``seed = 2**70``: refused before config.json is written."""
    cfg = config(work / "c.toml", synthetic_npz(work / "d.npz"),
                 run=f"seed = {2**70}")
    out = work / "run"
    return Case(["run", str(cfg), "--out", str(out), "--quiet"], "run.seed",
                [out / "config.json"], _cache(work))


def config_utf16(work: Path, _: Path) -> Case:
    """A config saved as UTF-16 (Windows Notepad's "Unicode")."""
    cfg = config(work / "c.toml", synthetic_npz(work / "d.npz"), encoding="utf-16")
    out = work / "run"
    return Case(["run", str(cfg), "--out", str(out), "--quiet"], "UTF-16", [out], _cache(work))


def threads_zero(work: Path, blood: Path) -> Case:
    """``coldstart --threads 0`` is refused before any work."""
    out = work / "sel.csv"
    return Case(_coldstart(blood, out, "--limit", "16", "--threads", "0"), "--threads",
                [out, work / "cache" / "encoders"], _cache(work))


def threads_negative(work: Path, blood: Path) -> Case:
    """``coldstart --threads -1`` is refused before any work."""
    out = work / "sel.csv"
    return Case(_coldstart(blood, out, "--limit", "16", "--threads", "-1"), "--threads",
                [out, work / "cache" / "encoders"], _cache(work))


def unknown_backbone(work: Path, _: Path) -> Case:
    """``backbone = "bogus"``: refused before config.json is written."""
    cfg = config(work / "c.toml", synthetic_npz(work / "d.npz"), model='backbone = "bogus"')
    out = work / "run"
    return Case(["run", str(cfg), "--out", str(out), "--quiet"], "unknown backbone",
                [out / "config.json"], _cache(work))


def npz_renamed(work: Path, blood: Path) -> Case:
    """``--from-npz`` of a renamed BloodMNIST keeps the real class names: checked by the test
    on the project it makes (this probe's "error" is a success, see ``succeeds``)."""
    copy = work / "copy-of-blood.npz"
    copy.write_bytes(blood.read_bytes())
    return Case(["project", "init", str(work / "p"), "--from-npz", str(copy), "--limit", "4"],
                "basophil")


def query_random_no_moco(work: Path, _: Path) -> Case:
    """``project query --strategy random`` on a new project must not pre-train MoCo (the
    lead's part of issue 21: replayed here, not in the test suite until it holds)."""
    from contextlib import redirect_stdout

    from medactive.cli import main

    folder = image_folder(work / "imgs", n=12, size=16)
    os.environ.setdefault("MEDACTIVE_PROGRESS", "0")
    with redirect_stdout(io.StringIO()):
        main(["project", "init", str(work / "p"), "--images", str(folder), "--classes", "a,b",
              "--image-size", "16"])
    return Case(["project", "query", str(work / "p"), "--budget", "3", "--strategy", "random"],
                "random", [work / "p" / "encoders"], _cache(work))


PROBES = [
    Probe("folder CSV row ../../outside.png", csv_escape),
    Probe("folder CSV row /etc/passwd", csv_absolute),
    Probe("repeats = 1000000000000", absurd_repeats),
    Probe("deflate bomb: data info", deflate_bomb),
    Probe("deflate bomb: coldstart --limit 100", deflate_bomb_coldstart),
    Probe("npz header claiming 279 GiB", lying_header),
    Probe("coldstart --out into a file", out_into_file),
    Probe("coldstart --out at a directory", out_at_directory),
    Probe("coldstart --out unwritable", out_unwritable),
    Probe("budget = inf", budget_inf),
    Probe("seed = 2**70", seed_huge),
    Probe("config in UTF-16", config_utf16),
    Probe("coldstart --threads 0", threads_zero),
    Probe("coldstart --threads -1", threads_negative),
    Probe("unknown backbone, config.json", unknown_backbone),
    Probe("--from-npz renamed copy keeps class names", npz_renamed),
    Probe("project query --strategy random: no MoCo", query_random_no_moco),
]
#: Probes whose command must succeed (exit 0) with ``expect`` on stdout, not fail.
SUCCEEDS = {"--from-npz renamed copy keeps class names", "project query --strategy random: "
            "no MoCo"}
#: Not the input helper's to fix (the lead's query internals): replayed, not in the suite.
NOT_IN_SUITE: set[str] = set()


def verdict(name: str, case: Case, code: int, out: str, err: str) -> str | None:
    """None when the probe holds, else why not (one line)."""
    if "Traceback" in err:
        return "traceback"
    left = [str(p) for p in case.forbidden if p.exists()]
    if left:
        return f"left behind: {', '.join(left)}"
    if name in SUCCEEDS:
        return None if code == 0 and case.expect in out else f"exit {code}"
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 2:
        return f"exit {code}"
    if len(lines) != 1 or not lines[0].startswith("error: ") or case.expect not in lines[0]:
        return f"stderr: {' | '.join(lines)[:160]}"
    return None


def _replay() -> int:
    """Run every probe as a subprocess; print one line per probe and the count that hold."""
    import resource
    import subprocess
    import sys
    import tempfile

    blood = Path(os.environ.get("MEDACTIVE_DATA_DIR", Path(__file__).resolve().parents[2]
                                / "shared" / "data")) / "bloodmnist.npz"

    def limit() -> None:  # a probe that regresses into an allocation spree stops at 3 GiB
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    held = 0
    for probe in PROBES:
        with tempfile.TemporaryDirectory() as tmp:
            case = probe.setup(Path(tmp), blood)
            env = {**os.environ, "MEDACTIVE_PROGRESS": "0", "OMP_NUM_THREADS": "1", **case.env}
            try:
                proc = subprocess.run([sys.executable, "-m", "medactive", *case.argv],
                                      capture_output=True, text=True, env=env, timeout=120,
                                      preexec_fn=limit)
                why = verdict(probe.name, case, proc.returncode, proc.stdout, proc.stderr)
            except subprocess.TimeoutExpired:
                why = "timed out after 120 s"
        held += why is None
        print(f"{'holds' if why is None else 'FAILS'}  {probe.name}"
              + ("" if why is None else f"  ({why})"), flush=True)
    print(f"{held} of {len(PROBES)} probes hold")
    return 0


if __name__ == "__main__":
    raise SystemExit(_replay())
