"""Pixel features of a pool on disk, for the pixel-space cold-start baseline (kmeans-pixels).

The in-memory path flattens every image to float32 and runs a PCA: for 200,000 images of 64x64
RGB that is 9.8 GB. A lazy pool is read twice in batches through the prefetching loader instead:
an incremental PCA (scikit-learn's ``IncrementalPCA``) learns the components, then each batch is
projected, so memory stays one batch plus ``(N, pca_dim)`` floats.
"""

from __future__ import annotations

import numpy as np

from medactive.data.lazy import LazyImages, prefetch_batches

_BATCH = 4096


def lazy_pixel_components(images: LazyImages, pca_dim: int | None) -> np.ndarray:
    """``(N, pca_dim)`` float32 principal components of the pixels scaled to [0, 1]
    (``pca_dim=None``: the raw pixels, which only suits small pools)."""
    from sklearn.decomposition import IncrementalPCA

    n = images.shape[0]
    batches = [slice(s, s + _BATCH) for s in range(0, n, _BATCH)]

    def flat(pixels: np.ndarray) -> np.ndarray:
        return pixels.reshape(pixels.shape[0], -1).astype(np.float32) / 255.0

    if pca_dim is None or pca_dim >= min(n, int(np.prod(images.shape[1:]))):
        return np.concatenate([flat(p) for p in prefetch_batches(images, batches)])
    pca = IncrementalPCA(pca_dim)
    # IncrementalPCA needs every batch to hold at least pca_dim rows: fold a short tail in
    sizes = [b.stop - b.start for b in batches]
    if len(batches) > 1 and min(sizes[-1], n - batches[-1].start) < pca_dim:
        batches = [*batches[:-2], slice(batches[-2].start, n)]
    for pixels in prefetch_batches(images, batches):
        pca.partial_fit(flat(pixels))
    return np.concatenate([pca.transform(flat(p)).astype(np.float32)
                           for p in prefetch_batches(images, batches)])
