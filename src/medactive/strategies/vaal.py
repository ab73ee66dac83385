"""VAAL (Sinha et al. 2019): variational adversarial active learning, kept small for CPU.

A VAE learns a latent space of all training images while a discriminator learns to tell
labelled from unlabelled latents; the VAE is also trained to fool it. Pool images the
discriminator is most confident are *unlabelled* are the least represented by the labelled set
and are acquired first. Task-agnostic: it does not use the classifier, only the images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from medactive.errors import StrategyError
from medactive.models.classifier import images_to_tensor
from medactive.models.device import select_device
from medactive.rng import seed_or_draw
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    register_strategy,
    require_network,
)


class _VAE(nn.Module):
    """Two strided convolutions down to 8x8, a ``latent_dim`` Gaussian, and back (32x32 in)."""

    def __init__(self, channels: int, latent_dim: int, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.enc = nn.Sequential(
            nn.Conv2d(channels, width // 2, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width // 2, width, 4, 2, 1), nn.ReLU(), nn.Flatten(),
        )
        self.mu = nn.Linear(width * 64, latent_dim)
        self.logvar = nn.Linear(width * 64, latent_dim)
        self.dec_fc = nn.Linear(latent_dim, width * 64)
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width // 2, channels, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-10, 10)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = self.dec(self.dec_fc(z).view(-1, self.width, 8, 8))
        return recon, mu, logvar


@register_strategy("vaal")
class VAAL(ScoreStrategy):
    """Acquire the pool images whose VAE latent looks least "labelled" to the discriminator.

    Needs ``view.images`` (not the classifier). Images are resized to 32x32 in [-1, 1].

    Args:
        epochs: passes over the pool (default 3). latent_dim: VAE latent size (default 16).
        batch_size: default 64. lr: Adam learning rate of both nets (default 5e-4).
        beta: KL weight (default 1). adversary_weight: weight of the VAE's fooling loss (1).
        seed: torch seed (None: drawn from the round's rng). device: default CUDA if present.
    """

    def __init__(
        self,
        epochs: int = 3,
        latent_dim: int = 16,
        batch_size: int = 64,
        lr: float = 5e-4,
        beta: float = 1.0,
        adversary_weight: float = 1.0,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        self.epochs = epochs
        self.latent_dim = latent_dim
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.adversary_weight = adversary_weight
        self.seed = seed
        self.device = device

    def _prepare(self, images: np.ndarray, dev: torch.device) -> torch.Tensor:
        x = images_to_tensor(images, dev)
        return F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)

    def check_params(self) -> None:
        if not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise StrategyError(f"epochs must be a positive integer, got {self.epochs!r}")

    def _score(self, view: RoundView, seed: int) -> np.ndarray:
        require_network(view, self.name, need_model=False)
        self.check_params()
        labelled_idx = np.flatnonzero(view.labeled_mask)
        if labelled_idx.size == 0:
            raise StrategyError("vaal needs at least one labelled image to learn what it is")
        pool_idx = view.pool_indices
        dev = select_device(self.device)
        bs = int(self.batch_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = np.random.default_rng(seed)
            vae = _VAE(view.images.shape[3], int(self.latent_dim)).to(dev)
            disc = nn.Sequential(
                nn.Linear(int(self.latent_dim), 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                nn.Linear(64, 1),
            ).to(dev)
            opt_vae = torch.optim.Adam(vae.parameters(), lr=float(self.lr))
            opt_disc = torch.optim.Adam(disc.parameters(), lr=float(self.lr))
            steps = max(1, int(np.ceil(pool_idx.size / bs)))
            for _ in range(int(self.epochs) * steps):
                # Each step pairs an unlabelled batch with a labelled one (sampled with
                # replacement: the labelled set is usually far smaller).
                xl = self._prepare(view.images[gen.choice(labelled_idx, bs)], dev)
                xu = self._prepare(view.images[gen.choice(pool_idx, bs)], dev)
                loss_vae = 0.0
                mus = []
                for x in (xl, xu):
                    recon, mu, logvar = vae(x)
                    kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
                    loss_vae = loss_vae + F.mse_loss(recon, x) + float(self.beta) * kl
                    mus.append(mu)
                # The VAE wants both latents to look labelled (target 1).
                logits = disc(torch.cat(mus))
                fool = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
                loss_vae = loss_vae + float(self.adversary_weight) * fool
                opt_vae.zero_grad(set_to_none=True)
                loss_vae.backward()
                opt_vae.step()
                target = torch.cat([torch.ones(bs, 1), torch.zeros(bs, 1)]).to(dev)
                loss_disc = F.binary_cross_entropy_with_logits(
                    disc(torch.cat(mus).detach()), target
                )
                opt_disc.zero_grad(set_to_none=True)
                loss_disc.backward()
                opt_disc.step()
            vae.eval()
            out = np.empty(pool_idx.size, dtype=np.float64)
            with torch.no_grad():
                for start in range(0, pool_idx.size, 512):
                    x = self._prepare(view.images[pool_idx[start : start + 512]], dev)
                    p_labelled = torch.sigmoid(disc(vae.mu(vae.enc(x))))[:, 0]
                    out[start : start + x.shape[0]] = (1.0 - p_labelled).double().cpu().numpy()
        return out

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        return self._score(view, seed_or_draw(self.seed, rng))
