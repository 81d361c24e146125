"""`tokenize`: a dataset and its semantic IDs in, the model's token data out.

The artifact (kind "tokenized", safetensors) holds every item's token sequence and the
examples of each split as item indices (history padded with -1, target), so token
sequences are built on the fly and nothing is stored twice. Its header carries the
layout and vocabulary, and the ID artifacts it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mgr_cli.artifacts import (Input, Provenance, check_output, read_header, read_tensors,
                               require_agreement, write_tensors)
from mgr_cli.data import load_dataset
from mgr_cli.data.dataset import SPLITS
from mgr_cli.errors import MgrError
from mgr_cli.tokens.layout import EOS, Vocab, alignment_pairs, check_layout, item_tokens

KIND = "tokenized"


def tokenize(dataset: Path | str, ids: list[Path | str], out: Path | str, *, layout: str,
             max_history: int | None = None, command: str = "python API",
             force: bool = False) -> dict:
    out, dataset, ids = Path(out), Path(dataset), [Path(p) for p in ids]
    check_output(out, force)
    if not ids:
        raise MgrError("give at least one semantic-ID artifact")
    dh = read_header(dataset, "dataset")
    id_headers = [(p, read_header(p, "semantic-ids")) for p in ids]
    require_agreement([(dataset, dh)] + id_headers, "item_ids_hash", "item order")
    modalities = [h["meta"]["modality"] for _, h in id_headers]
    check_layout(layout, modalities)
    from mgr_cli.quantize.stage import load_ids

    codes = {}
    for p, h in id_headers:
        codes[h["meta"]["modality"]] = load_ids(p)[0]
    vocab = Vocab(layout, modalities, {m: [int(k) for k in h["meta"]["codebook_sizes"]]
                                       for m, (_, h) in zip(modalities, id_headers)})
    table = item_tokens(vocab, codes)
    ds, _ = load_dataset(dataset)
    if max_history is not None:
        if max_history < 1:
            raise MgrError("--max-history must be at least 1")
        ds.max_history = max_history
    tensors: dict[str, np.ndarray] = {"item_tokens": table}
    counts = {}
    for split in SPLITS:
        ex = list(ds.examples(split))
        if not ex:
            raise MgrError(f"{dataset}: the {split} split is empty; users need 3+ interactions")
        hist = np.full((len(ex), ds.max_history), -1, dtype=np.int32)
        for r, e in enumerate(ex):
            hist[r, ds.max_history - len(e.history):] = e.history  # left-padded: recent last
        tensors[f"{split}_history"] = hist
        tensors[f"{split}_target"] = np.array([e.target for e in ex], dtype=np.int32)
        tensors[f"{split}_user"] = np.array([e.user for e in ex], dtype=np.int32)
        counts[split] = len(ex)
    pairs = alignment_pairs(vocab)
    meta = {"layout": layout, "modalities": modalities, "vocab": vocab.to_json(),
            "vocab_size": vocab.size, "vocab_fingerprint": vocab.fingerprint(),
            "item_length": int(table.shape[1]), "spans": vocab.spans(), "n_items": len(table),
            "item_ids_hash": dh["meta"]["item_ids_hash"], "dataset": dh["meta"]["name"],
            "max_history": ds.max_history, "examples": counts,
            "alignment_examples": len(table) * len(pairs),
            "alignment_pairs": [list(p) for p in pairs]}
    inputs = [Input("dataset", dataset, dh)] + [Input(f"ids:{m}", p, h)
                                                for m, (p, h) in zip(modalities, id_headers)]
    config = {"layout": layout, "max_history": ds.max_history, "ids": [str(p) for p in ids]}
    return write_tensors(out, KIND, tensors, provenance=Provenance(command, config),
                         inputs=inputs, meta=meta, force=force)


@dataclass
class Tokenized:
    """A tokenized artifact, loaded: token sequences for either task, built on demand."""

    header: dict
    tensors: dict[str, np.ndarray]
    path: Path

    @classmethod
    def load(cls, path: Path | str) -> "Tokenized":
        header, tensors = read_tensors(path, KIND)
        return cls(header, tensors, Path(path))

    @property
    def vocab(self) -> Vocab:
        v = self.header["meta"]["vocab"]
        return Vocab(v["layout"], v["modalities"], v["codebook_sizes"])

    @property
    def items(self) -> np.ndarray:
        return self.tensors["item_tokens"]

    @property
    def decodable(self) -> np.ndarray:
        """bool per item: it has a token sequence (all but the new items of an extended
        catalogue whose codes the vocabulary has no tokens for, `mgr items add`)."""
        d = self.tensors.get("decodable")
        return np.ones(len(self.items), dtype=bool) if d is None else d.astype(bool)

    def source(self, history: np.ndarray) -> np.ndarray:
        h = history[history >= 0]
        if "decodable" in self.tensors:  # an item without tokens adds nothing to a history
            h = h[self.decodable[h]]
        return np.concatenate([self.items[h].ravel(), [EOS]]).astype(np.int64)

    def target(self, item: int, span: tuple[int, int] | None = None) -> np.ndarray:
        toks = self.items[item] if span is None else self.items[item, span[0]:span[1]]
        return np.concatenate([toks, [EOS]]).astype(np.int64)

    def rec_examples(self, split: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        hist, tgt = self.tensors[f"{split}_history"], self.tensors[f"{split}_target"]
        return [self.source(h) for h in hist], [self.target(int(t)) for t in tgt]

    def align_examples(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """For every item and ordered modality pair (a, b): <to_b> + ID_a -> ID_b."""
        vocab, spans = self.vocab, self.header["meta"]["spans"]
        src, tgt = [], []
        for a, b in alignment_pairs(vocab):
            to_b = vocab.token(f"<to_{b}>")
            for i in np.flatnonzero(self.decodable):
                sa = self.items[i, spans[a][0]:spans[a][1]]
                src.append(np.concatenate([[to_b], sa, [EOS]]).astype(np.int64))
                tgt.append(self.target(i, tuple(spans[b])))
        if not src:
            raise MgrError(f"{self.path}: alignment needs two or more modalities "
                           f"(layout {vocab.layout} has {', '.join(vocab.modalities)})")
        return src, tgt
