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

The layouts are a registry, `LAYOUTS`, of `Layout`s (name, help, `segments`, `check`);
a plugin file adds its own with `register_layout` (docs/extending.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from typing import Callable

import numpy as np

from mgr_cli.errors import MgrError
from mgr_cli.registry import Registry

PAD, EOS = 0, 1
RESERVED = ("<pad>", "</s>")


@dataclass(frozen=True)
class Layout:
    """How an item's semantic IDs become its token sequence.

    segments(modalities) -> the item's parts in order: a modality's name stands for its
        whole ID (each modality exactly once), any other string is a special token
        ("<sep_1>") that the vocabulary gets once, after <pad> and </s>.
    check(modalities) -> why this layout cannot take these ID artifacts, or None.
    A layout reads no config: it is a function of the modalities and their order.
    """

    name: str
    help: str
    segments: Callable[[list[str]], list[str]]
    check: Callable[[list[str]], str | None]


def _one(name: str, fused: bool):
    def check(mods: list[str]) -> str | None:
        if len(mods) != 1:
            return f"layout {name} takes one ID artifact, got {len(mods)}"
        if fused and mods != ["fused"]:
            return f"layout ef takes early-fusion IDs (modality fused), got {', '.join(mods)}"
        if not fused and "fused" in mods:
            return "fused IDs go with layout ef (MGR-EF), not tiger"
        return None

    return check


def _many(name: str):
    def check(mods: list[str]) -> str | None:
        return None if len(mods) >= 2 else f"layout {name} needs two or more ID artifacts, got {len(mods)}"

    return check


def _separated(mods: list[str]) -> list[str]:
    out = [mods[0]]
    for i, m in enumerate(mods[1:], start=1):
        out += [f"<sep_{i}>", m]
    return out


LAYOUTS: Registry[Layout] = Registry("token layout", "--layout", [
    Layout("tiger", "one modality", list, _one("tiger", False)),
    Layout("ef", "fused IDs", list, _one("ef", True)),
    Layout("lf", "concatenated", list, _many("lf")),
    Layout("lfpp", "LF + modality tokens", _separated, _many("lfpp")),
])


def register_layout(layout: Layout) -> Layout:
    """Add a token layout (from a plugin file); a name already taken is an error."""
    if not isinstance(layout, Layout):
        raise MgrError("register_layout takes a mgr_cli.tokens.layout.Layout")
    return LAYOUTS.register(layout)


def check_layout(name: str, modalities: list[str]) -> Layout:
    """The layout called `name`, if it takes these modalities (else a one-line error)."""
    layout = LAYOUTS.pick(name)
    problem = layout.check(list(modalities))
    if problem:
        raise MgrError(problem)
    if len(set(modalities)) != len(modalities):
        raise MgrError(f"each modality once, got {', '.join(modalities)}")
    return layout


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
        layout = check_layout(self.layout, self.modalities)
        n = len(self.modalities)
        self.segments = list(layout.segments(list(self.modalities)))
        ids = [s for s in self.segments if s in self.modalities]
        if sorted(ids) != sorted(self.modalities):
            raise MgrError(f"layout {self.layout} must place each modality's ID once, got "
                           f"segments {self.segments}")
        self.specials = list(RESERVED)
        for s in self.segments:
            if s not in self.modalities and s not in self.specials:
                if s.startswith("<to_") or not (s.startswith("<") and s.endswith(">")):
                    raise MgrError(f"layout {self.layout}: special token {s!r} must look like "
                                   "<name> and not be <pad>, </s> or <to_...>")
                self.specials.append(s)
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
        for s in self.segments:
            if s in self.modalities:
                out[s] = (pos, pos + len(self.codebook_sizes[s]))
                pos = out[s][1]
            else:
                pos += 1
        return {m: out[m] for m in self.modalities}

    def to_json(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


def item_tokens(vocab: Vocab, codes: dict[str, np.ndarray]) -> np.ndarray:
    """[n_items, T] token ids of every item, in the layout's order."""
    n = len(np.asarray(codes[vocab.modalities[0]]))
    parts = []
    for s in vocab.segments:
        if s not in vocab.modalities:
            parts.append(np.full((n, 1), vocab.token(s)))
            continue
        c = np.asarray(codes[s], dtype=np.int64)
        sizes = np.asarray(vocab.codebook_sizes[s])
        if c.shape[1] != len(sizes) or (c < 0).any() or (c >= sizes).any():
            raise MgrError(f"{s} codes do not fit their codebook sizes {sizes.tolist()}")
        parts.append(c + np.asarray(vocab.offsets[s]))
    return np.concatenate(parts, axis=1).astype(np.int64)


def alignment_pairs(vocab: Vocab) -> list[tuple[str, str]]:
    """Every ordered pair of modalities (image->text and text->image for two)."""
    return [(a, b) for a in vocab.modalities for b in vocab.modalities if a != b]
