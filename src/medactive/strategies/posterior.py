"""Posterior samples of the linear head, for BALD- and EPIG-type scores on cached features.

Two ways to draw T plausible heads ``(W_t, b_t)`` around the trained one:

* **MC dropout** (Gal & Ghahramani 2016): the classifier's only dropout sits in front of the
  head, so a stochastic pass is ``softmax((h ⊙ m_t) Wᵀ + b)`` with an inverted-dropout mask
  ``m_t``, i.e. the head ``W diag(m_t)``. Cheap, but at p = 0.2 a narrow posterior.
* **Last-layer Laplace** (MacKay 1992; Daxberger et al. 2021): a Gaussian around the trained head
  θ* = vec(W, b) with precision ``Λ = Σ_i (diag p_i - p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ + τ I`` — the
  generalised Gauss-Newton (= Fisher) of the cross-entropy of a linear softmax head over the
  labelled images, x̃ = [h; 1], plus an isotropic prior of precision τ. τ is set by MacKay's
  evidence fixed point ``τ = γ / ‖θ*‖²``, ``γ = Σ_j λ_j / (λ_j + τ)`` (λ_j = GGN eigenvalues), so
  nothing is tuned per dataset. The GGN is exact (``structure="full"``) while ``C (D + 1) ≤
  4096``; beyond that the Kronecker factorisation ``(Σ_i A_i) ⊗ (Σ_i x̃_i x̃_iᵀ) / M`` (KFAC) keeps
  it O(C³ + D³). This closed form replaces ``laplace-torch``, whose last-layer Laplace computes
  the same GGN through backpack/asdl for any network (docs/strategies.md says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medactive.errors import StrategyError

POSTERIORS = ("dropout", "laplace")
#: Largest C·(D+1) for which the Laplace GGN is formed exactly (4096² float64 = 128 MB).
FULL_GGN_MAX_PARAMS = 4096


@dataclass
class HeadSamples:
    """T sampled linear heads: ``weights (T, C, D)``, ``biases (T, C)`` (float64)."""

    weights: np.ndarray
    biases: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of samples T."""
        return int(self.weights.shape[0])

    def probabilities(self, features: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """``(T, n, C)`` float64 softmax outputs of every sampled head on ``(n, D)`` features.

        The logits are one float32 matmul against the T·C stacked heads per row chunk (the
        features are float32 anyway); softmax in float64.
        """
        t, c, d = self.weights.shape
        stacked = self.weights.reshape(t * c, d).T.astype(np.float32)  # (D, T*C)
        out = np.empty((t, features.shape[0], c), dtype=np.float64)
        for start in range(0, features.shape[0], chunk):
            f = np.asarray(features[start : start + chunk], np.float32)
            z = (f @ stacked).astype(np.float64).reshape(-1, t, c).transpose(1, 0, 2)
            z += self.biases[:, None, :]
            z -= z.max(axis=2, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=2, keepdims=True)
            out[:, start : start + f.shape[0]] = z
        return out


def dropout_heads(weight: np.ndarray, bias: np.ndarray, masks: np.ndarray) -> HeadSamples:
    """The T masked heads ``W diag(m_t)`` for ``(T, D)`` masks (bias unchanged)."""
    w = np.asarray(weight, np.float64)
    return HeadSamples(w[None, :, :] * np.asarray(masks, np.float64)[:, None, :],
                       np.broadcast_to(np.asarray(bias, np.float64), (masks.shape[0], w.shape[0])))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def evidence_prior_precision(eigenvalues: np.ndarray, sq_norm: float, n_iter: int = 100) -> float:
    """MacKay's fixed point ``τ = γ(τ) / ‖θ*‖²`` with ``γ = Σ λ_j / (λ_j + τ)`` (from τ = 1)."""
    lam = np.maximum(np.asarray(eigenvalues, np.float64), 0.0)
    tau = 1.0
    for _ in range(n_iter):
        gamma = float(np.sum(lam / (lam + tau)))
        new = max(gamma, 1e-3) / max(sq_norm, 1e-12)
        if abs(new - tau) <= 1e-6 * tau:
            return new
        tau = new
    return tau


def _low_rank_noise(xt: np.ndarray, p: np.ndarray, eps: np.ndarray, sq_norm: float,
                    prior_precision: float | None) -> np.ndarray:
    """``Λ^{-1/2} ε`` for the exact GGN through its rank-(M·C) factor, when M·C < C(D+1).

    ``A_m = B_m B_mᵀ`` with ``B_m = diag(√p_m) - p_m √p_mᵀ``, so ``GGN = J Jᵀ`` with columns
    ``J_(m, a) = B_m[:, a] ⊗ x̃_m``. The nonzero eigenpairs come from the (M·C)² Gram
    ``JᵀJ[(m, a), (n, b)] = (B_mᵀ B_n)[a, b] ⟨x̃_m, x̃_n⟩``: ``V = J U S^{-1/2}``, and
    ``Λ^{-1/2} = V ((S + τ)^{-1/2} - τ^{-1/2}) Vᵀ + τ^{-1/2} I`` (eigenvalue 0 elsewhere).
    """
    m, c = p.shape
    dp = xt.shape[1]
    sq = np.sqrt(p)
    b = sq[:, :, None] * np.eye(c)[None] - p[:, :, None] * sq[:, None, :]  # (M, C, C): B_m
    gram_b = np.einsum("mka,nkb->manb", b, b)  # (M, C, M, C)
    gram = gram_b * (xt @ xt.T)[:, None, :, None]
    s_val, u = np.linalg.eigh(gram.reshape(m * c, m * c))
    keep = s_val > s_val.max() * 1e-12
    s_val, u = s_val[keep], u[:, keep]
    tau = prior_precision or evidence_prior_precision(s_val, sq_norm)
    # J U: column (m, a) of J is the outer product B_m[:, a] ⊗ x̃_m, i.e. (C, D') per column.
    ju = np.einsum("mka,mu,mar->kur", b, xt, u.reshape(m, c, -1)).reshape(c * dp, -1)
    v = ju / np.sqrt(s_val)  # orthonormal eigenvectors of the GGN, (C·D', r)
    flat = eps.reshape(eps.shape[0], -1)
    coef = (flat @ v) * (1.0 / np.sqrt(s_val + tau) - 1.0 / np.sqrt(tau))
    return (flat / np.sqrt(tau) + coef @ v.T).reshape(eps.shape[0], c, dp)


def laplace_heads(
    labeled_features: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    n_samples: int,
    rng: np.random.Generator,
    *,
    prior_precision: float | None = None,
    structure: str = "auto",
    low_rank: bool | None = None,
) -> HeadSamples:
    """T heads drawn from the last-layer Laplace posterior around the trained head.

    Args:
        labeled_features: ``(M, D)`` features of the labelled images (the GGN's data).
        weight: ``(C, D)`` trained head weight. bias: ``(C,)`` trained bias.
        n_samples: T. rng: draws the Gaussian noise.
        prior_precision: τ; None = MacKay's evidence fixed point (module docstring).
        structure: ``"full"`` GGN, ``"kron"`` (KFAC) or ``"auto"`` (full up to C(D+1) = 4096).
        low_rank: compute the full GGN's eigenpairs from its (M·C)² Gram (None: when
            4·M·C < C(D+1), i.e. while labels are very few); the same draws either way.

    Returns:
        :class:`HeadSamples` with T heads ``θ* + Λ^{-1/2} ε``.
    """
    x = np.asarray(labeled_features, np.float64)
    w = np.asarray(weight, np.float64)
    b = np.asarray(bias, np.float64)
    c, d = w.shape
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] == 0:
        raise StrategyError(f"laplace: labelled features {x.shape} must be (M >= 1, {d})")
    if structure not in ("auto", "full", "kron"):
        raise StrategyError(f"laplace structure must be auto, full or kron, got {structure!r}")
    if prior_precision is not None and not (np.isfinite(prior_precision) and prior_precision > 0):
        raise StrategyError(f"prior_precision must be positive, got {prior_precision!r}")
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise StrategyError(f"n_samples must be a positive integer, got {n_samples!r}")
    xt = np.hstack([x, np.ones((x.shape[0], 1))])  # (M, D'), D' = D + 1
    theta = np.hstack([w, b[:, None]])  # (C, D')
    p = _softmax(x @ w.T + b)
    sq_norm = float(np.sum(theta * theta))
    full = structure == "full" or (structure == "auto" and c * (d + 1) <= FULL_GGN_MAX_PARAMS)
    eps = rng.standard_normal((n_samples, c, d + 1))
    dp = d + 1
    if low_rank is None:
        low_rank = 4 * x.shape[0] * c < c * dp  # measured break-even: its einsums cost more
    if full and low_rank:
        noise = _low_rank_noise(xt, p, eps, sq_norm, prior_precision)
    elif full:
        # GGN[(k, u), (j, v)] = Σ_m A_m[k, j] x̃_m[u] x̃_m[v], A_m = diag(p_m) - p_m p_mᵀ.
        ggn = np.empty((c, dp, c, dp))
        for k in range(c):
            for j in range(k, c):
                a_kj = p[:, k] * ((k == j) - p[:, j])  # (M,)
                block = (xt * a_kj[:, None]).T @ xt
                ggn[k, :, j, :] = block
                ggn[j, :, k, :] = block.T
        ggn = ggn.reshape(c * dp, c * dp)
        lam, vec = np.linalg.eigh(ggn)
        lam = np.maximum(lam, 0.0)
        tau = prior_precision or evidence_prior_precision(lam, sq_norm)
        # the symmetric root Λ^{-1/2} = V (λ + τ)^{-1/2} Vᵀ: the same draw as the low-rank path
        noise = ((eps.reshape(n_samples, -1) @ vec) / np.sqrt(lam + tau)) @ vec.T  # (T, C·D')
        noise = noise.reshape(n_samples, c, dp)
    else:
        m = x.shape[0]
        g_fac = (np.diag(p.sum(axis=0)) - p.T @ p) / np.sqrt(m)  # (C, C)
        a_fac = (xt.T @ xt) / np.sqrt(m)  # (D', D')
        g_val, g_vec = np.linalg.eigh(g_fac)
        a_val, a_vec = np.linalg.eigh(a_fac)
        lam = np.maximum(np.outer(g_val, a_val), 0.0)  # (C, D') eigenvalues of G ⊗ A
        tau = prior_precision or evidence_prior_precision(lam.ravel(), sq_norm)
        # (U_g ⊗ U_a) diag(λ + τ)^{-1/2} ε, in matrix form U_g (ε / sqrt(λ + τ)) U_aᵀ.
        noise = g_vec[None] @ (eps / np.sqrt(lam + tau)[None]) @ a_vec.T[None]
    samples = theta[None] + noise
    return HeadSamples(samples[:, :, :d], samples[:, :, d])
