"""Gallery thumbnails: the browser image of a registered file, made small.

The one place that turns a registered file into a thumbnail; it goes through the function that
serves full images (:func:`medactive.data.decode.render_png`: hash check, the project's decode
settings, DICOM window), so the gallery never shows something the viewer would not.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image

from medactive.data.decode import DecodeSettings, render_png

THUMB_SIDE = 96


@lru_cache(maxsize=512)
def thumbnail_png(path: str, sha256: str, settings: DecodeSettings | None = None,
                  side: int = THUMB_SIDE) -> bytes:
    """PNG bytes of the file at ``path`` (which must still hash to ``sha256``), decoded with
    ``settings`` and fitted into a ``side`` x ``side`` box (aspect kept; small images are not
    enlarged)."""
    with Image.open(io.BytesIO(render_png(path, sha256, settings))) as img:
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
    return buf.getvalue()
