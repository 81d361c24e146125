"""RQ-VAE as in TIGER: an MLP encoder to a small latent, L residual codebooks of K
codes, an MLP decoder.

Choices against the failures public reimplementations report (codebook collapse):
  * inputs are standardised per dimension (CLIP vectors are L2-normalised, so each
    dimension is tiny and a per-element MSE barely moves the encoder),
  * losses are summed over dimensions and averaged over items,
  * codebooks start from k-means on the initial latents, level by level on residuals,
  * codes unused during an epoch restart at residuals drawn from that epoch.
Loss: ||x - x_hat||^2 + sum_l ||sg(r_l) - e_l||^2 + beta ||r_l - sg(e_l)||^2 (beta 0.25).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from mgr_cli.quantize.kmeans import kmeans


@dataclass
class RQVAEConfig:
    levels: int = 3
    codebook_size: int = 256
    latent_dim: int = 32
    hidden: list[int] = field(default_factory=lambda: [512, 256, 128])
    beta: float = 0.25
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 1024
    max_epochs: int = 300
    patience: int = 15
    min_delta: float = 1e-3
    max_seconds: float | None = None
    seed: int = 0


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class RQVAE(nn.Module):
    def __init__(self, in_dim: int, cfg: RQVAEConfig):
        super().__init__()
        self.cfg = cfg
        dims = [in_dim, *cfg.hidden, cfg.latent_dim]
        self.encoder = _mlp(dims)
        self.decoder = _mlp(dims[::-1])
        self.codebooks = nn.Parameter(torch.randn(cfg.levels, cfg.codebook_size, cfg.latent_dim) * 0.1)

    def quantize(self, z: torch.Tensor):
        """Residual quantisation: codes [n, L], quantised latent, per-level residuals."""
        residual = z
        zq = torch.zeros_like(z)
        codes, residuals, loss = [], [], z.new_zeros(())
        for level in range(self.cfg.levels):
            book = self.codebooks[level]
            d = (residual.pow(2).sum(1, keepdim=True) - 2 * residual @ book.T + book.pow(2).sum(1))
            idx = d.argmin(1)
            e = book[idx]
            loss = loss + ((residual.detach() - e).pow(2).sum(1).mean()
                           + self.cfg.beta * (residual - e.detach()).pow(2).sum(1).mean())
            codes.append(idx)
            residuals.append(residual.detach())
            zq = zq + e
            residual = residual - e.detach()
        return torch.stack(codes, 1), zq, loss, residuals

    def forward(self, x: torch.Tensor):
        z = self.encoder(x)
        codes, zq, q_loss, residuals = self.quantize(z)
        x_hat = self.decoder(z + (zq - z).detach())  # straight-through estimator
        recon = (x_hat - x).pow(2).sum(1).mean()
        return x_hat, codes, recon, q_loss, residuals

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, seed: int) -> None:
        residual = self.encoder(x)
        for level in range(self.cfg.levels):
            centres, assign = kmeans(residual, self.cfg.codebook_size, iters=20, seed=seed + level)
            self.codebooks.data[level] = centres
            residual = residual - centres[assign]

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes [n, L], reconstruction [n, d]) in eval mode."""
        codes, recons = [], []
        for s in range(0, x.shape[0], batch):
            z = self.encoder(x[s:s + batch])
            c, zq, _, _ = self.quantize(z)
            codes.append(c)
            recons.append(self.decoder(zq))
        return torch.cat(codes), torch.cat(recons)


def train_rqvae(x: torch.Tensor, cfg: RQVAEConfig, log: Callable[[str], None] = lambda s: None
                ) -> tuple[RQVAE, dict]:
    """Train on standardised inputs x [n, d] until the loss stops improving."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = RQVAE(x.shape[1], cfg)
    model.init_codebooks(x[torch.randperm(x.shape[0], generator=gen)[:20000]], cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n, bs = x.shape[0], min(cfg.batch_size, x.shape[0])
    best, stale, epoch, restarts = math.inf, 0, 0, 0
    start = time.perf_counter()
    history = []
    for epoch in range(1, cfg.max_epochs + 1):
        perm = torch.randperm(n, generator=gen)
        used = torch.zeros(cfg.levels, cfg.codebook_size, dtype=torch.bool)
        total = 0.0
        last_res: list[torch.Tensor] = []
        for s in range(0, n - bs + 1, bs):
            xb = x[perm[s:s + bs]]
            _, codes, recon, q_loss, last_res = model(xb)
            loss = recon + q_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
            for level in range(cfg.levels):
                used[level, codes[:, level]] = True
        restarts += _restart_dead(model, used, last_res, gen)
        epoch_loss = total / (n - n % bs)
        history.append(epoch_loss)
        if epoch_loss < best * (1 - cfg.min_delta):
            best, stale = epoch_loss, 0
        else:
            stale += 1
        if epoch % 25 == 0:
            log(f"rq-vae epoch {epoch}: loss {epoch_loss:.4f}")
        if stale >= cfg.patience:
            break
        if cfg.max_seconds and time.perf_counter() - start > cfg.max_seconds:
            break
    model.eval()
    return model, {"epochs": epoch, "final_loss": history[-1], "best_loss": best,
                   "dead_code_restarts": restarts, "converged": stale >= cfg.patience,
                   "seconds": round(time.perf_counter() - start, 2)}


@torch.no_grad()
def _restart_dead(model: RQVAE, used: torch.Tensor, residuals: list[torch.Tensor],
                  gen: torch.Generator) -> int:
    count = 0
    for level, res in enumerate(residuals):
        dead = (~used[level]).nonzero().squeeze(1)
        if len(dead) and len(res):
            pick = torch.randint(len(res), (len(dead),), generator=gen)
            model.codebooks.data[level, dead] = res[pick]
            count += len(dead)
    return count
