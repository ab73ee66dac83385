"""One decoder for every path: the same files give the same pixels to the experiment loader,
to `project init` + `project query` (the model) and to the labelling app (the clinician)."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import medactive
from medactive.data.folder import load_image_folder
from medactive.data.pixels import to_channels
from samples import write_zoo

SIZE = 16


class _Captured(Exception):
    """Raised by the patched encoder to hand the query's input array to the test."""

    def __init__(self, images: np.ndarray) -> None:
        super().__init__("captured")
        self.images = images


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("zoo") / "images"
    files = write_zoo(folder)
    with open(folder.parent / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for i, path in enumerate(files.values()):
            writer.writerow([path.name, "ab"[i % 2]])
    return folder, files


def _query_input(project: Path, monkeypatch) -> np.ndarray:
    """What `project query` feeds the model (the encoder is stubbed right after loading)."""
    import medactive.annotate.query as query

    def capture(images, *args, **kwargs):
        raise _Captured(images)

    monkeypatch.setattr(query, "pretrain", capture)  # the encoder is the first to see them
    with pytest.raises(_Captured) as caught:
        query.run_query(project, 1)
    return caught.value.images


def _served(project: Path) -> dict[str, np.ndarray]:
    """What the labelling app shows, per image id (decoded back from its PNG responses)."""
    from fastapi.testclient import TestClient

    from medactive.annotate.app import create_app
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project) as store:
        rows = store.images()
    shown = {}
    # as a browser: at the served address, loading the page first (it may set a session cookie)
    with TestClient(create_app(project), base_url="http://127.0.0.1:8765") as client:
        assert client.get("/").status_code == 200
        for row in rows:
            response = client.get(f"/api/image/{row.id}")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "image/png"
            shown[row.uid] = np.asarray(Image.open(io.BytesIO(response.content)))
    return shown


@pytest.mark.parametrize("window", [None, "lung"])
def test_every_path_gives_the_same_pixels(zoo, tmp_path, monkeypatch, window) -> None:
    from medactive.cli import main

    folder, files = zoo
    csv_path = folder.parent / "labels.csv"
    extra = {} if window is None else {"window": window, "frame": 0}
    # 1. the experiment / image-folder loader, at the model's size and at native size
    model = load_image_folder(csv_path, folder, image_size=SIZE, channels=3, **extra)
    native = load_image_folder(csv_path, folder, image_size=None, channels=3, **extra)
    # 2. `project init` (CLI) -> `project query`'s input array
    project = tmp_path / "project"
    args = ["project", "init", str(project), "--images", str(folder), "--classes", "a,b",
            "--image-size", str(SIZE)]
    if window is not None:
        args += ["--window", window, "--frame", "0"]
    assert main(args) == 0
    queried = _query_input(project, monkeypatch)
    # 3. the labelling app
    shown = _served(project)

    order = {uid: k for k, uid in enumerate(sorted(p.name for p in files.values()))}
    assert queried.shape == (len(files), SIZE, SIZE, 3)  # colour files present -> 3 channels
    for k, uid in enumerate(model.ids):
        assert np.array_equal(queried[order[uid]], model.images[k]), uid
        assert np.array_equal(to_channels(shown[uid], 3), native.images[k]), uid
        assert (shown[uid].ndim == 3) == uid.endswith(("rgb.png", "photo.jpg", "derm.dcm")), uid
    # the 12-bit X-ray in a 16-bit PNG is scaled to its own range, not clipped to white
    xray = shown["png16_xray.png"]
    assert (xray == 255).mean() < 0.05 and xray.min() == 0 and xray.max() == 255
    if window == "lung":  # the preset overrides the CT header's soft-tissue window
        assert not np.array_equal(shown["ct.dcm"], _served_default(zoo, tmp_path)["ct.dcm"])


def _served_default(zoo, tmp_path) -> dict[str, np.ndarray]:
    from medactive.annotate.project import init_from_folder

    folder, _ = zoo
    init_from_folder(tmp_path / "default", folder, ["a", "b"], image_size=SIZE).close()
    return _served(tmp_path / "default")


def test_multiframe_policy_is_the_same_everywhere(zoo, tmp_path) -> None:
    from medactive.annotate.project import init_from_folder
    from medactive.data.decode import DecodeSettings, read_image

    folder, files = zoo
    series = files["dcm_multiframe"]
    middle, first = read_image(series), read_image(series, settings=DecodeSettings(frame=0))
    assert not np.array_equal(middle, first)
    init_from_folder(tmp_path / "p", folder, ["a", "b"], image_size=SIZE,
                     settings=DecodeSettings(frame=0)).close()
    assert np.array_equal(_served(tmp_path / "p")["series.dcm"], first)
    init_from_folder(tmp_path / "q", folder, ["a", "b"], image_size=SIZE).close()
    assert np.array_equal(_served(tmp_path / "q")["series.dcm"], middle)


def test_annotate_imports_no_image_library() -> None:
    annotate = Path(medactive.__file__).parent / "annotate"
    for source in annotate.rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("PIL", "pydicom", "imageio", "cv2", "skimage"), \
                    f"{source.name} imports {name}"
