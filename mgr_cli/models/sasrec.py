"""SASRec (Kang and McAuley 2018): the ID-based self-attentive sequential recommender.

Item embeddings (index 0 is padding) plus learned positions, causal self-attention
blocks (pre-norm), a final layer norm; the score of every item is the dot product of
the last hidden state with its embedding (shared input/output embeddings).

Objective: full softmax cross-entropy over all items at every position of the training
sequence (our choice, documented: it avoids the variance of sampled negatives and is
the stronger of the two usual objectives on these data sizes). Evaluation ranks ALL
items, with the same split, history length and metrics as `mgr evaluate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class SASRecConfig:
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    max_len: int = 20

    def to_dict(self) -> dict:
        return asdict(self)


class SASRec(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig):
        super().__init__()
        self.cfg = cfg
        self.items = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
        self.positions = nn.Embedding(cfg.max_len, cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, dim_feedforward=cfg.hidden * 4,
                                           dropout=cfg.dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden)
        nn.init.normal_(self.items.weight, std=0.02)

    def hidden_states(self, seq: torch.Tensor) -> torch.Tensor:
        """seq [batch, max_len] of item index + 1 (0 = padding, left-padded) -> [batch, max_len, hidden]."""
        length = seq.shape[1]
        pos = torch.arange(length, device=seq.device)
        h = self.items(seq) * self.cfg.hidden ** 0.5 + self.positions(pos)
        h = self.dropout(h) * (seq > 0).unsqueeze(-1)
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=seq.device), 1)
        h = self.blocks(h, mask=causal)
        return self.norm(h)

    def scores(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores of every item (index order, padding excluded) after each user's sequence."""
        return self.hidden_states(seq)[:, -1] @ self.items.weight[1:].T

    def forward(self, seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(seq, target)

    def loss(self, seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Full-softmax cross-entropy at every non-padding position; target uses seq's indexing."""
        logits = self.hidden_states(seq) @ self.items.weight[1:].T
        return nn.functional.cross_entropy(logits.flatten(0, 1), (target - 1).flatten(),
                                           ignore_index=-1)
