"""Token layouts of semantic IDs for the sequence-to-sequence recommender.

Vocabulary (ids in this order):
    0 <pad>, 1 </s>,
    <sep_1> .. <sep_{M-1}>   LF++ only: s_i marks the transition from modality i-1 to i
    <to_{m}> per modality     alignment task tokens, when there are 2+ modalities
    <{m}_{level}_{code}>      one block of codebook_size tokens per modality and level

An item's token sequence, for modalities m_1..m_M in the chosen order:
    tiger / ef   c^1_1 .. c^1_L                       (one ID artifact: unimodal or fused)
    lf           c^1_1 .. c^1_L  c^2_1 .. c^2_L ...     (the modalities' IDs concatenated)
    lfpp         c^1_1 .. c^1_L <sep_1> c^2_1 .. c^2_L ...
Every item of a layout has the same length, which the decoder's prefix tree relies on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from mgr_cli.errors import MgrError

LAYOUTS = ("tiger", "ef", "lf", "lfpp")
PAD, EOS = 0, 1


def pad(seqs: list, value: int):
    """Right-pad token sequences into one int64 tensor [len(seqs), longest] (`value`:
    PAD for inputs, -100 for labels the loss ignores)."""
    import torch

    width = max(len(s) for s in seqs)
    out = np.full((len(seqs), width), value, dtype=np.int64)
    for r, s in enumerate(seqs):
        out[r, : len(s)] = s
    return torch.from_numpy(out)


@dataclass
class Vocab:
    layout: str
    modalities: list[str]
    codebook_sizes: dict[str, list[int]]

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise MgrError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        n = len(self.modalities)
        if self.layout in ("tiger", "ef") and n != 1:
            raise MgrError(f"layout {self.layout} takes one ID artifact, got {n}")
        if self.layout in ("lf", "lfpp") and n < 2:
            raise MgrError(f"layout {self.layout} needs two or more ID artifacts, got {n}")
        if len(set(self.modalities)) != n:
            raise MgrError(f"each modality once, got {', '.join(self.modalities)}")
        self.specials = ["<pad>", "</s>"]
        if self.layout == "lfpp":
            self.specials += [f"<sep_{i}>" for i in range(1, n)]
        if n > 1:
            self.specials += [f"<to_{m}>" for m in self.modalities]
        self.offsets: dict[str, list[int]] = {}
        nxt = len(self.specials)
        for m in self.modalities:
            self.offsets[m] = []
            for k in self.codebook_sizes[m]:
                self.offsets[m].append(nxt)
                nxt += k
        self.size = nxt

    def token(self, name: str) -> int:
        return self.specials.index(name)

    def names(self) -> list[str]:
        """Every token's name, by id (for reading sequences, and the golden tests)."""
        out = list(self.specials)
        for m in self.modalities:
            for level, k in enumerate(self.codebook_sizes[m], start=1):
                out += [f"<{m}_{level}_{c}>" for c in range(k)]
        return out

    def spans(self) -> dict[str, tuple[int, int]]:
        """Where each modality's ID sits in an item's token sequence: [start, end)."""
        out, pos = {}, 0
        for i, m in enumerate(self.modalities):
            if self.layout == "lfpp" and i > 0:
                pos += 1
            out[m] = (pos, pos + len(self.codebook_sizes[m]))
            pos = out[m][1]
        return out

    def to_json(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


def item_tokens(vocab: Vocab, codes: dict[str, np.ndarray]) -> np.ndarray:
    """[n_items, T] token ids of every item, in the layout's order."""
    parts = []
    for i, m in enumerate(vocab.modalities):
        c = np.asarray(codes[m], dtype=np.int64)
        sizes = np.asarray(vocab.codebook_sizes[m])
        if c.shape[1] != len(sizes) or (c < 0).any() or (c >= sizes).any():
            raise MgrError(f"{m} codes do not fit their codebook sizes {sizes.tolist()}")
        if vocab.layout == "lfpp" and i > 0:
            parts.append(np.full((len(c), 1), vocab.token(f"<sep_{i}>")))
        parts.append(c + np.asarray(vocab.offsets[m]))
    return np.concatenate(parts, axis=1).astype(np.int64)


def alignment_pairs(vocab: Vocab) -> list[tuple[str, str]]:
    """Every ordered pair of modalities (image->text and text->image for two)."""
    return [(a, b) for a in vocab.modalities for b in vocab.modalities if a != b]
