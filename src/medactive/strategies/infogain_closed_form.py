"""The closed form behind :func:`~medactive.strategies.infogain.info_gain_scores`: the
evaluation logits after one optimiser step for every candidate label, and their entropies.

Kept apart from :mod:`medactive.strategies.infogain` (the definitions, the weights, the chunked
driver and the strategies) because this is the tensor arithmetic alone: it knows nothing of
variants, priors or round views, and works on one block of (evaluation, pool) rows at a time.

For both update rules (``sgd``, ``adam``) every evaluation logit vector becomes
``z'_e = v_ea + β_eac e_c``: a base ``v_ea`` shared by the C candidate labels of ``(e, a)`` plus a
bump of logit c only.

* SGD: ``v = u_e - δ_ea p_a``, ``β = δ_ea = η(⟨h_e, h_a⟩ + 1)``, ``u_e = z_e - ηλ W h_e``: one Gram
  product gives all N×C candidate heads.
* Adam: row k of the residual is ``p_ak`` for every c ≠ k and ``p_ak - 1`` for c = k, so each row
  of the step takes one of two values per ``(a, k)``. With ψ(t) = t / (|t| + ε),
  ``G^s_eak = ⟨h_e, ψ((p_ak - s) h_a + λ W_k)⟩ + ψ(p_ak - s)`` for s ∈ {0, 1} (two Gram products
  against 2C transformed pool vectors), ``v = z_e - lr G⁰_ea`` and ``β_eac = lr (G⁰_eac - G¹_eac)``.

With σ = softmax(v), H0 its entropy and k = expm1(β), the entropy after bumping logit c is exactly

    H'(c) = log1p(σ_c k) + (H0 - σ_c (k log σ_c + (k + 1) β)) / (1 + σ_c k),

so each pair costs O(C) after its Gram entries: O(N·K·(D + C)) for SGD, O(N·K·C·D) for Adam
(the driver, ``info_gain_scores_rows``, chunks pool and evaluation rows so memory is bounded).
"""

from __future__ import annotations

import torch

from medactive.errors import StrategyError

#: Adam's ε (torch's default), part of the exact one-step update.
ADAM_EPS = 1e-8

# Beyond this |logit| we subtract the row max before exp (float64 exp overflows at ~709).
_SAFE_LOGIT = 300.0


class SGDStep:
    """Base logits ``v`` and bumps β of the SGD candidates for blocks of (eval, pool) rows."""

    def __init__(self, he: torch.Tensor, base: torch.Tensor, eta: float) -> None:
        self.he, self.base, self.eta = he, base, eta

    def prepare(self, ha: torch.Tensor, proba: torch.Tensor) -> None:
        """Take a pool chunk: ``(P, D)`` features ``ha`` and their ``(P, C)`` probabilities."""
        self.ha, self.proba = ha.to(self.he.dtype), proba

    def block(self, es: slice, ps: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v (K, P, C), β (K, P, 1))`` for evaluation rows ``es`` and chunk rows ``ps``."""
        delta = (self.he[es] @ self.ha[ps].T).to(torch.float64).add_(1.0).mul_(self.eta)  # (K, P)
        v = torch.addcmul(self.base[es][:, None, :], delta[:, :, None], self.proba[ps][None],
                          value=-1.0)
        return v, delta[:, :, None]


class AdamStep:
    """The same for one Adam step from fresh state (see the module docstring's G⁰, G¹)."""

    def __init__(self, he: torch.Tensor, z_eval: torch.Tensor, w: torch.Tensor, lr: float,
                 weight_decay: float, gram_dtype: torch.dtype) -> None:
        self.he, self.z, self.w, self.lr, self.lam = he, z_eval, w, lr, weight_decay
        self.gram_dtype = gram_dtype

    @staticmethod
    def _psi(t: torch.Tensor) -> torch.Tensor:
        return t / (t.abs() + ADAM_EPS)

    def prepare(self, ha: torch.Tensor, proba: torch.Tensor) -> None:
        """Take a pool chunk: ``(P, D)`` features ``ha`` and their ``(P, C)`` probabilities."""
        ha64 = ha.to(torch.float64)
        decay = self.lam * self.w[None, :, :]  # (1, C, D)
        # (P, C, D) transformed pool vectors for residual rows p_ak (s = 0) and p_ak - 1 (s = 1).
        self.a0 = self._psi(proba[:, :, None] * ha64[:, None, :] + decay).to(self.gram_dtype)
        self.a1 = self._psi((proba - 1.0)[:, :, None] * ha64[:, None, :] + decay).to(
            self.gram_dtype)
        self.s0, self.s1 = self._psi(proba), self._psi(proba - 1.0)  # (P, C), bias rows

    def block(self, es: slice, ps: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v (K, P, C), β (K, P, C))`` for evaluation rows ``es`` and chunk rows ``ps``."""
        he = self.he[es]
        a0, a1 = self.a0[ps], self.a1[ps]
        p, c = a0.shape[0], a0.shape[1]
        g0 = (he @ a0.reshape(p * c, -1).T).to(torch.float64).reshape(-1, p, c) + self.s0[ps]
        g1 = (he @ a1.reshape(p * c, -1).T).to(torch.float64).reshape(-1, p, c) + self.s1[ps]
        v = self.z[es][:, None, :] - self.lr * g0
        return v, g0.sub_(g1).mul_(self.lr)


def weighted_h2_sum(v: torch.Tensor, bump: torch.Tensor, wts: torch.Tensor) -> torch.Tensor:
    """``(P,)`` Σ_e Σ_c w_c(a) H'(e, a, c) for base logits ``v (K, P, C)`` and bumps ``bump``
    ``(K, P, C)`` or ``(K, P, 1)`` (candidate c adds its bump to logit c only)."""
    bmax = float(bump.abs().max())
    if bmax > 700.0:
        raise StrategyError(
            f"step_size too large: one step moves a logit by {bmax:.3g} (> 700, exp overflow)"
        )
    c = v.shape[-1]
    if float(bump.min()) < -0.5:
        # 1 + σ_c k with k = expm1(β) < -0.4 cancels when σ_c ≈ 1 (a dominant class pushed far
        # down), and the rank-one formula loses digits. Only negative Gram entries (features
        # with signed inner products) and large steps get here: use each candidate's own
        # stable log-softmax instead, O(C²) per pair for this chunk only.
        eye = torch.eye(c, dtype=v.dtype, device=v.device)
        cand = v[:, :, None, :] + bump.expand(*v.shape)[..., None] * eye  # (K, P, C, C)
        logq = torch.log_softmax(cand, dim=-1)
        hc = -(logq.exp() * logq).sum(dim=-1)  # (K, P, C)
        return (hc.sum(dim=0) * wts).sum(dim=1)
    # v is a fresh tensor of the caller's block: the passes below reuse its memory.
    if float(v.abs().max()) + bmax >= _SAFE_LOGIT:  # else no overflow possible: skip the max
        v.sub_(v.amax(dim=-1, keepdim=True))
    ev = v.exp()
    z = ev.sum(dim=-1, keepdim=True)
    sigma = ev.div_(z)  # (K, P, C), reuses ev's memory
    logsig = v.sub_(z.log_())  # log softmax without log(σ) underflow, reuses v
    h0 = -(sigma * logsig).sum(dim=-1, keepdim=True)  # (K, P, 1)
    k = torch.expm1(bump)  # shared by the C candidates (SGD) or one per candidate (Adam)
    # inner = σ_c (k log σ_c + (k + 1) β), computed in place on logsig.
    inner = logsig.mul_(k).add_((k + 1.0) * bump).mul_(sigma)
    denom = sigma.mul_(k).add_(1.0)  # 1 + σ_c k, in place on sigma (no longer needed)
    # H'(c) = log(1 + σ_c k) + (H0 - inner) / (1 + σ_c k); log of the stored sum rather than
    # log1p costs at most one ulp of 1, i.e. ~1e-16 absolute, like every other rounding here.
    hc = inner.neg_().add_(h0).div_(denom).add_(denom.log_())
    # Sum over evaluation images first, then weight: (P, C) weights touch a small tensor only.
    return (hc.sum(dim=0) * wts).sum(dim=1)
