"""Decode the examples of a split into ranked items, in batches (streaming)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from mgr_cli.decoding.beam import PrefixTree, beam_search, ranked_items
from mgr_cli.decoding.t5step import T5Decoder
from mgr_cli.errors import MgrError
from mgr_cli.tokens.stage import Tokenized
from mgr_cli.training.data import pad


def decode_sequences(tok: Tokenized, modalities: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """The token sequences decoding generates: every item's full sequence, or only the
    part of chosen modalities (LF/LF++ decoding a subset, the paper's Table 3)."""
    vocab = tok.vocab
    if not modalities or set(modalities) == set(vocab.modalities):
        return tok.items, vocab.modalities
    unknown = [m for m in modalities if m not in vocab.modalities]
    if unknown:
        raise MgrError(f"--modalities {', '.join(unknown)}: the layout has only "
                       f"{', '.join(vocab.modalities)}")
    spans = tok.header["meta"]["spans"]
    keep = [m for m in vocab.modalities if m in modalities]
    cols = np.concatenate([np.arange(*spans[m]) for m in keep])
    return tok.items[:, cols], keep


def rank_examples(model, tok: Tokenized, split: str, rows: list[int], *, beams: int, k: int,
                  batch_size: int, device: torch.device,
                  modalities: list[str] | None = None) -> Iterator[tuple[int, list[int], list[float]]]:
    """(example row, ranked items, scores) for each row of `split`, in order."""
    sequences, _ = decode_sequences(tok, modalities)
    tree = PrefixTree.build(sequences).to(device)
    decoder = T5Decoder(model, tree.depth + 1)
    hist = tok.tensors[f"{split}_history"]
    model.eval()
    window = batch_size * 16  # sort users by history length within windows: less padding
    for w in range(0, len(rows), window):
        part = rows[w:w + window]
        sources = {r: tok.source(hist[r]) for r in part}
        order = sorted(part, key=lambda r: len(sources[r]))
        done: dict[int, tuple[list[int], list[float]]] = {}
        for s in range(0, len(order), batch_size):
            chunk = order[s:s + batch_size]
            ids = pad([sources[r] for r in chunk], 0).to(device)
            leaves, scores = beam_search(decoder, tree, ids, (ids != 0).long(), beams)
            done.update(zip(chunk, ranked_items(tree, leaves.cpu(), scores.cpu(), k)))
        for r in part:  # back in row order
            yield r, done[r][0], done[r][1]
