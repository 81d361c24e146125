"""RQ-VAE as in TIGER: an MLP encoder to a small latent, L residual codebooks of K
codes, an MLP decoder.

Choices against the failures public reimplementations report (codebook collapse):
  * inputs are standardised per dimension (CLIP vectors are L2-normalised, so each
    dimension is tiny and a per-element MSE barely moves the encoder),
  * losses are summed over dimensions and averaged over items,
  * codebooks start from k-means on the initial latents, level by level on residuals,
  * codes unused during an epoch restart at residuals drawn from that epoch.
Loss: ||x - x_hat||^2 + sum_l ||sg(r_l) - e_l||^2 + beta ||r_l - sg(e_l)||^2 (beta 0.25).

LETTER (Wang et al. 2024) adds two regularisers to the same model (`letter_*` fields):
  * collaborative: a contrastive loss over the batch between each item's quantised
    latent (the sum of its codes) and its collaborative embedding (e.g. SASRec's item
    embedding); in-batch items are the negatives. When the collaborative embedding's
    size differs from the latent size a linear map (learned with the rest) brings the
    collaborative side to the latent size,
  * diversity: the codes of each level are grouped by k-means (every few epochs); an
    item's residual is pulled towards another code of its code's group and pushed from
    all other codes (its own code excluded), which spreads assignments over the group
    instead of piling them on one code.
Total: RQ-VAE loss + alpha * collaborative + gamma * diversity (LETTER's alpha 0.02,
beta 1e-4; we call the latter gamma because beta is the commitment weight here).
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
    letter_alpha: float = 0.0       # weight of the collaborative contrastive loss
    letter_gamma: float = 0.0       # weight of the diversity loss
    letter_clusters: int = 10       # groups of codes per level for the diversity loss
    letter_cluster_every: int = 10  # epochs between regroupings
    letter_temperature: float = 1.0


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
        self.collab_map: nn.Module | None = None

    def add_collab_map(self, collab_dim: int) -> None:
        if collab_dim != self.cfg.latent_dim:
            self.collab_map = nn.Linear(collab_dim, self.cfg.latent_dim, bias=False)

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
        return x_hat, codes, recon, q_loss, residuals, zq + (z - z.detach())

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


def train_rqvae(x: torch.Tensor, cfg: RQVAEConfig, log: Callable[[str], None] = lambda s: None,
                collab: torch.Tensor | None = None) -> tuple[RQVAE, dict]:
    """Train on standardised inputs x [n, d] until the loss stops improving. With
    `collab` [n, c] (collaborative embeddings in the same item order) and the letter_*
    weights, LETTER's regularisers are added."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.letter_alpha and collab is None:
        raise ValueError("the collaborative loss (letter_alpha > 0) needs collaborative embeddings")
    if collab is not None and len(collab) != len(x):
        raise ValueError(f"{len(collab)} collaborative embeddings for {len(x)} items")
    model = RQVAE(x.shape[1], cfg)
    if collab is not None:
        model.add_collab_map(collab.shape[1])
    model.init_codebooks(x[torch.randperm(x.shape[0], generator=gen)[:20000]], cfg.seed)
    letter = bool(cfg.letter_alpha or cfg.letter_gamma)
    groups: torch.Tensor | None = None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n, bs = x.shape[0], min(cfg.batch_size, x.shape[0])
    best, stale, epoch, restarts = math.inf, 0, 0, 0
    start = time.perf_counter()
    history = []
    for epoch in range(1, cfg.max_epochs + 1):
        perm = torch.randperm(n, generator=gen)
        used = torch.zeros(cfg.levels, cfg.codebook_size, dtype=torch.bool)
        total = 0.0
        extra = {"collaborative": 0.0, "diversity": 0.0}
        if cfg.letter_gamma and (groups is None or (epoch - 1) % cfg.letter_cluster_every == 0):
            groups = code_groups(model.codebooks.detach(), cfg.letter_clusters, cfg.seed + epoch)
        last_res: list[torch.Tensor] = []
        for s in range(0, n - bs + 1, bs):
            rows = perm[s:s + bs]
            xb = x[rows]
            _, codes, recon, q_loss, last_res, zq = model(xb)
            loss = recon + q_loss
            if letter:
                if cfg.letter_alpha:
                    cb = collab[rows]
                    cb = model.collab_map(cb) if model.collab_map is not None else cb
                    c_loss = collaborative_loss(zq, cb, cfg.letter_temperature)
                    loss = loss + cfg.letter_alpha * c_loss
                    extra["collaborative"] += float(c_loss.detach()) * xb.shape[0]
                if cfg.letter_gamma:
                    d_loss = diversity_loss(model, codes, last_res, groups, gen)
                    loss = loss + cfg.letter_gamma * d_loss
                    extra["diversity"] += float(d_loss.detach()) * xb.shape[0]
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
            parts = "".join(f", {k} {v / (n - n % bs):.4f}" for k, v in extra.items() if v)
            log(f"rq-vae epoch {epoch}: loss {epoch_loss:.4f}{parts}")
        if stale >= cfg.patience:
            break
        if cfg.max_seconds and time.perf_counter() - start > cfg.max_seconds:
            break
    model.eval()
    info = {"epochs": epoch, "final_loss": history[-1], "best_loss": best,
            "dead_code_restarts": restarts, "converged": stale >= cfg.patience,
            "seconds": round(time.perf_counter() - start, 2)}
    if letter:
        info["final_regularisers"] = {k: round(v / (n - n % bs), 6) for k, v in extra.items()}
    return model, info


def collaborative_loss(zq: torch.Tensor, collab: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """In-batch contrastive loss: item i's quantised latent should score its own
    collaborative embedding above every other item's in the batch."""
    logits = zq @ collab.T / temperature
    return nn.functional.cross_entropy(logits, torch.arange(len(zq), device=zq.device))


@torch.no_grad()
def code_groups(codebooks: torch.Tensor, clusters: int, seed: int) -> torch.Tensor:
    """[levels, K]: the k-means group of every code, per level."""
    return torch.stack([kmeans(book, min(clusters, len(book)), iters=20, seed=seed + level)[1]
                        for level, book in enumerate(codebooks)])


def diversity_loss(model: RQVAE, codes: torch.Tensor, residuals: list[torch.Tensor],
                   groups: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per level: each item's residual (logits = negative squared distances to every
    code, its own code excluded) should pick a random other code of its code's group.
    Items whose code is alone in its group do not count."""
    total, counted = codes.new_zeros((), dtype=torch.float32), 0
    for level, res in enumerate(residuals):
        book, group, own = model.codebooks[level], groups[level], codes[:, level]
        same = group[own][:, None] == group[None, :]
        same[torch.arange(len(own)), own] = False
        has = same.any(1)
        if not has.any():
            continue
        weights = same[has].float()
        positive = torch.multinomial(weights, 1, generator=gen).squeeze(1)
        r = res[has]  # residuals are detached: the loss moves the codes
        logits = -(r.pow(2).sum(1, keepdim=True) - 2 * r @ book.T + book.pow(2).sum(1))
        logits[torch.arange(len(r)), own[has]] = float("-inf")
        total = total + nn.functional.cross_entropy(logits, positive)
        counted += 1
    return total / max(counted, 1)


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
