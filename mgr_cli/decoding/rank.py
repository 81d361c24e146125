"""Decode the examples of a split into ranked items, in batches (streaming).

On the CPU a batch is split between worker threads, each running its own beam search
with fewer intra-op threads (by default one per core, at least 16 users each): at these
matrix sizes two independent searches on one thread each beat one search on two threads
(and a half batch's attention working set stays in cache). Every user's result is the
same either way; only the batch's padding can differ, which the masks ignore.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import torch

from mgr_cli.decoding.beam import PrefixTree, beam_search, ranked_items
from mgr_cli.decoding.t5step import T5Decoder
from mgr_cli.errors import MgrError
from mgr_cli.tokens.layout import pad
from mgr_cli.tokens.stage import Tokenized


def decode_sequences(tok: Tokenized, modalities: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """The token sequences decoding generates: every item's full sequence, or only the
    part of chosen modalities, any subset, in layout order (LF/LF++ decoding a subset,
    the paper's Table 3). A kept modality after the first keeps the special token that
    precedes it in the layout (LF++: text,collab decodes text <sep_2> collab), so the
    model is told which modality comes next, as in training."""
    vocab = tok.vocab
    if not modalities or set(modalities) == set(vocab.modalities):
        return tok.items, vocab.modalities
    unknown = [m for m in modalities if m not in vocab.modalities]
    if unknown:
        raise MgrError(f"--modalities {', '.join(unknown)}: the layout has only "
                       f"{', '.join(vocab.modalities)}")
    return tok.items[:, subset_columns(vocab, modalities)], [m for m in vocab.modalities if m in modalities]


def subset_columns(vocab, modalities: list[str]) -> np.ndarray:
    """The columns of an item's token sequence that decoding `modalities` generates."""
    cols, pos, before = [], 0, None
    for s in vocab.segments:
        if s in vocab.modalities:
            width = len(vocab.codebook_sizes[s])
            if s in modalities:
                if cols and before is not None:
                    cols.append(before)
                cols += range(pos, pos + width)
            pos, before = pos + width, None
        else:
            pos, before = pos + 1, pos
    return np.asarray(cols, dtype=np.int64)


def item_tree(tok: Tokenized, modalities: list[str] | None):
    """The prefix tree over the decodable items' sequences (every item, except in an
    extended catalogue the new items that have no tokens: `Tokenized.decodable`), and the
    modalities decoded."""
    sequences, kept = decode_sequences(tok, modalities)
    ok = tok.decodable
    if ok.all():
        return PrefixTree.build(sequences), kept
    rows = np.flatnonzero(ok)
    return PrefixTree.build(sequences[rows], items=rows), kept


def default_workers(batch_size: int, device: torch.device) -> int:
    """One decoding thread per intra-op thread, each with at least 16 users (1 on GPUs)."""
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), batch_size // 16))


def check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise MgrError(f"--workers must be positive (0 on the command line: one per core), got {workers}")


class DecodeThreads:
    """`workers` threads for `decode_batch` (a context manager). The intra-op threads are
    divided between them while it is open (each thread takes the setting when it first
    runs an op) and restored when it closes."""

    def __init__(self, workers: int):
        check_workers(workers)
        self.workers, self._pool, self._before = workers, None, None

    def __enter__(self) -> "DecodeThreads":
        if self.workers > 1:
            self._before = torch.get_num_threads()
            torch.set_num_threads(max(1, self._before // self.workers))
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mgr-decode")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            torch.set_num_threads(self._before)
            self._pool = None

    def map(self, fn, parts: list) -> list:
        if self._pool is None or len(parts) == 1:
            return [fn(p) for p in parts]
        return list(self._pool.map(fn, parts))


def decode_batch(decoder: T5Decoder, tree: PrefixTree, sources: list[list[int]], *, beams: int,
                 k: int, device: torch.device,
                 threads: DecodeThreads | None = None) -> list[tuple[list[int], list[float]]]:
    """Ranked items and scores for each source sequence, in order. With threads, the batch
    is cut into one contiguous part per worker, each padded to its own longest."""
    def run(part: list[list[int]]):
        ids = pad(part, 0).to(device)
        leaves, scores = beam_search(decoder, tree, ids, (ids != 0).long(), beams)
        return ranked_items(tree, leaves.cpu(), scores.cpu(), k)

    n = 1 if threads is None else min(threads.workers, len(sources))
    cuts = [len(sources) * i // n for i in range(n + 1)]
    parts = [sources[a:b] for a, b in zip(cuts, cuts[1:])]
    results = threads.map(run, parts) if threads else [run(p) for p in parts]
    return [r for part in results for r in part]


def rank_examples(model, tok: Tokenized, split: str, rows: list[int], *, beams: int, k: int,
                  batch_size: int, device: torch.device, modalities: list[str] | None = None,
                  workers: int | None = None) -> Iterator[tuple[int, list[int], list[float]]]:
    """(example row, ranked items, scores) for each row of `split`, in order. `workers`:
    decoding threads on the CPU (default: `default_workers`)."""
    tree = item_tree(tok, modalities)[0].to(device)
    decoder = T5Decoder(model, tree.depth + 1)
    hist = tok.tensors[f"{split}_history"]
    model.eval()
    if workers is None:
        workers = default_workers(batch_size, device)
    check_workers(workers)
    window = batch_size * 16  # sort users by history length within windows: less padding
    with DecodeThreads(workers if device.type == "cpu" else 1) as threads:
        for w in range(0, len(rows), window):
            part = rows[w:w + window]
            sources = {r: tok.source(hist[r]) for r in part}
            order = sorted(part, key=lambda r: len(sources[r]))
            done: dict[int, tuple[list[int], list[float]]] = {}
            for s in range(0, len(order), batch_size):
                chunk = order[s:s + batch_size]
                done.update(zip(chunk, decode_batch(decoder, tree, [sources[r] for r in chunk], beams=beams,
                                                    k=k, device=device, threads=threads)))
            for r in part:  # back in row order
                yield r, done[r][0], done[r][1]
