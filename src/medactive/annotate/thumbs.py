"""Gallery thumbnails: the browser image of a registered file, made small.

The one place that turns a registered file into a thumbnail; it goes through the one decoder
that serves full images (:mod:`medactive.data.decode`: hash check, the project's decode
settings, DICOM window), so the gallery never shows something the viewer would not. Thumbnails
are square (``THUMB_SIDE`` pixels a side, the decoder's resize), like the model's input.
"""

from __future__ import annotations

from functools import lru_cache

from medactive.data.decode import DecodeSettings, encode_png, read_image

THUMB_SIDE = 96


@lru_cache(maxsize=512)
def thumbnail_png(path: str, sha256: str, settings: DecodeSettings | None = None,
                  side: int = THUMB_SIDE) -> bytes:
    """PNG bytes of the file at ``path`` (which must still hash to ``sha256``), decoded with
    ``settings`` and resized to ``side`` x ``side``."""
    return encode_png(read_image(path, side, settings=settings, sha256=sha256))
