"""`mgr items add`: new items for an existing catalogue, without retraining anything.

    add_items("new.csv", "out/", ids=["text.ids.safetensors"], tokenized="tiger.tok.safetensors")

The new items are embedded with the encoders each embeddings artifact records, given
semantic IDs by the frozen quantizer each ID artifact stores, and appended (old items
first, in their order) to new artifacts in `out/`: dataset.jsonl, MOD.emb.safetensors,
MOD.ids.safetensors (+ .ids.jsonl), and with a tokenized artifact tok.safetensors. Each
records the artifact it extends as its "base" input and what was added in meta.added.

The extended tokenized artifact keeps the trained vocabulary (its fingerprint), so a run
trained on the base answers over the extended catalogue: `mgr recommend RUN out/tok...`.
A new item whose codes need a token the vocabulary lacks (a last-level code past the
trained uniqueness level) stays in the catalogue but is no decoding target: the tensor
`decodable` marks it 0 and meta.added counts the reachable items. Everything is computed
and checked first, written into a hidden folder, and renamed to `out/` at the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from mgr_cli.artifacts import (ArtifactError, Input, Provenance, find_ancestor, read_header,
                               write_tensors)
from mgr_cli.artifacts.replace import replace_atomically
from mgr_cli.data.dataset import BASE
from mgr_cli.errors import MgrError
from mgr_cli.tokens.layout import item_tokens

KIND = "tokenized"


def _pairs(ids: list[Path], emb: list[Path]) -> list[tuple[Path, Path]]:
    """(embeddings, IDs) per modality: an --emb of the IDs' modality, else the one the IDs
    were quantized from; it must be that one (the same content hash)."""
    by_mod = {}
    for p in emb:
        by_mod.setdefault(read_header(p, "embeddings")["meta"]["modality"], p)
    out = []
    for p in ids:
        h = read_header(p, "semantic-ids")
        m = h["meta"]["modality"]
        made = next((e for e in h["inputs"] if e["role"] == "embeddings"), None)
        e = by_mod.pop(m, None) or (find_ancestor(p, "embeddings", h) if made else None)
        if e is None:
            raise MgrError(f"{p}: records no embeddings it was quantized from; pass --emb")
        if made is None or read_header(e, "embeddings")["content_hash"] != made["content_hash"]:
            raise MgrError(f"{p} was not quantized from {e} (another content hash): its encoder "
                           "or items differ; give the embeddings the IDs were made from")
        out.append((e, p))
    if by_mod:
        raise MgrError(f"--emb {', '.join(map(str, by_mod.values()))}: no --ids of modality "
                       f"{', '.join(by_mod)}")
    return out


def add_items(items_file: Path | str, out: Path | str, *, ids: list[Path | str] = (),
              emb: list[Path | str] = (), tokenized: Path | str | None = None,
              dataset: Path | str | None = None, images: Path | str | None = None,
              device: str = "auto", command: str = "python API", force: bool = False,
              log: Callable[[str], None] = lambda s: None) -> dict:
    """Add the items of `items_file` to a catalogue; returns a summary (what was written,
    IDs, reachability). See the module's docstring."""
    from mgr_cli.data import load_dataset
    from mgr_cli.data.extend import extended, read_new_items
    from mgr_cli.encoders import load_embeddings
    from mgr_cli.encoders.extend import check_new_items, embed_like
    from mgr_cli.quantize.extend import new_codes
    from mgr_cli.quantize.frozen import load_quantizer

    out = Path(out)
    if out.exists() and not force:
        raise ArtifactError(f"{out} already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out} is a file; give a folder for the extended artifacts")
    ids, emb = [Path(p) for p in ids], [Path(p) for p in emb]
    tok_h = read_header(tokenized, KIND) if tokenized is not None else None
    if tok_h is not None and not ids:
        ids = [find_ancestor_role(Path(tokenized), tok_h, f"ids:{m}") for m in tok_h["meta"]["modalities"]]
    if not ids:
        raise MgrError("give the ID artifacts to extend (--ids), or a tokenized artifact (--tokenized)")
    pairs = _pairs(ids, emb)
    quant = [load_quantizer(p) for _, p in pairs]  # one-line errors: no quantizer, hierarchical
    mods = [h["meta"]["modality"] for _, _, h in quant]
    if len(set(mods)) != len(mods):
        raise MgrError(f"one ID artifact per modality, got {', '.join(mods)}")
    if tok_h is not None:
        made = {e["role"]: e["content_hash"] for e in tok_h["inputs"]}
        for m, (_, p), (_, _, h) in zip(mods, pairs, quant):
            if made.get(f"ids:{m}") != h["content_hash"]:
                raise MgrError(f"{tokenized} was not tokenized from {p} ({m}); give its ID artifacts")
        if sorted(mods) != sorted(tok_h["meta"]["modalities"]):
            raise MgrError(f"{tokenized} holds {', '.join(tok_h['meta']['modalities'])} IDs, "
                           f"got {', '.join(mods)}")
    ds_path = Path(dataset) if dataset is not None else find_ancestor(pairs[0][1], "dataset")
    ds, dh = load_dataset(ds_path)
    for (_, p), (_, _, h) in zip(pairs, quant):
        if h["meta"]["item_ids_hash"] != dh["meta"]["item_ids_hash"]:
            raise MgrError(f"{p} and {ds_path} disagree on the items; give the dataset the IDs were made from")
    new, root = read_new_items(items_file, ds, images)
    full_ds = extended(ds, new, root)
    item_ids = [it.id for it in full_ds.items]
    embs = [load_embeddings(e) for e, _ in pairs]
    for (e, _), (_, eh) in zip(pairs, embs):
        check_new_items(e, eh, new, device)
    work = []  # everything computed before anything is written
    for (e, p), (fz, codes, h), (x, eh) in zip(pairs, quant, embs):
        xn, blank = embed_like(e, eh, x, ds, new, root, device=device, log=log)
        full, sizes, facts = new_codes(fz, codes, h, xn)
        work.append((e, eh, x, xn, blank, p, h, fz, codes, full, sizes, facts))
        log(f"{h['meta']['modality']}: {len(new)} new IDs, {facts['shared_ids']} sharing an ID"
            + "".join(f", level {g['level']} grows {g['before']} -> {g['after']}" for g in facts["grown_levels"]))
    return _write(out, force, ds_path, dh, full_ds, new, Path(items_file), work, item_ids,
                  tokenized, tok_h, command, log)


def find_ancestor_role(path: Path, header: dict, role: str) -> Path:
    from mgr_cli.artifacts.lineage import parent_path

    entry = next((e for e in header["inputs"] if e["role"] == role), None)
    if entry is None:
        raise MgrError(f"{path}: records no {role} input; pass --ids")
    return parent_path(path, entry)


def _write(out, force, ds_path, dh, full_ds, new, items_file, work, item_ids, tokenized, tok_h,
           command, log) -> dict:
    from mgr_cli.data.extend import save_extended as save_dataset_ext
    from mgr_cli.encoders.extend import save_extended as save_emb_ext
    from mgr_cli.quantize.extend import save_extended as save_ids_ext

    summary = {"out": str(out), "items_before": len(full_ds.items) - len(new),
               "items_added": len(new), "modalities": {}}

    def write(tmp: Path) -> None:  # the whole folder, put in place once complete
        tmp.mkdir(parents=True)
        dpath = tmp / "dataset.jsonl"
        dhead = save_dataset_ext(ds_path, dh, full_ds, new, dpath, items_file=items_file,
                                 command=command)
        id_paths = {}
        for e, eh, x, xn, blank, p, h, fz, codes, full, sizes, facts in work:
            m = h["meta"]["modality"]
            epath, ipath = tmp / f"{m}.emb.safetensors", tmp / f"{m}.ids.safetensors"
            ehead = save_emb_ext(e, eh, x, xn, item_ids, epath, (dpath, dhead), new_blank=blank,
                                 command=command)
            save_ids_ext(p, h, fz, codes, full, sizes, facts, item_ids, ipath, (epath, ehead),
                         command=command)
            id_paths[m] = ipath
            summary["modalities"][m] = {"shared_ids": facts["shared_ids"],
                                        "grown_levels": facts["grown_levels"],
                                        "new_ids": {it.id: full[k].tolist() for k, it in enumerate(new)}}
        if tokenized is not None:
            th = extend_tokenized(Path(tokenized), (dpath, dhead), id_paths, tmp / "tok.safetensors",
                                  command=command)
            summary["reachable"] = th["meta"]["added"]["reachable"]
            summary["unreachable"] = th["meta"]["added"]["unreachable"]
            log(f"tokenized: {summary['reachable']} of {len(new)} new items are decoding targets "
                "(their full ID is a path of the trained vocabulary)")

    replace_atomically(out, write)  # with --force the old folder goes only once the new one is whole
    return summary


def extend_tokenized(base: Path, dataset: tuple[Path, dict], ids: dict[str, Path], out: Path, *,
                     command: str = "python API") -> dict:
    """The tokenized artifact of the extended catalogue, in the base's vocabulary: its
    examples as they were (the interactions did not change), a token row per item, and
    `decodable` (uint8 per item) 0 where the vocabulary has no token for an item's code."""
    from mgr_cli.quantize.stage import load_ids
    from mgr_cli.tokens.stage import Tokenized

    tok = Tokenized.load(base)
    vocab, meta = tok.vocab, tok.header["meta"]
    codes, heads = {}, {}
    for m in vocab.modalities:
        codes[m], heads[m] = load_ids(ids[m])
    n_old, n = len(tok.items), len(codes[vocab.modalities[0]])
    fits = np.ones(n, dtype=bool)
    for m in vocab.modalities:
        fits &= (codes[m] < np.asarray(vocab.codebook_sizes[m])).all(1)
    old = np.flatnonzero(tok.decodable)  # an earlier addition's items without tokens stay so
    if not (np.array_equal(fits[:n_old], tok.decodable) and np.array_equal(
            item_tokens(vocab, {m: c[old] for m, c in codes.items()}), tok.items[old])):
        raise MgrError(f"{base}: the extended IDs do not give its items their tokens; the old "
                       "IDs must stay as they were")
    table = np.zeros((n, tok.items.shape[1]), dtype=np.int64)  # <pad> rows: not decodable
    table[:n_old] = tok.items
    rows = np.flatnonzero(fits[n_old:]) + n_old
    if len(rows):
        table[rows] = item_tokens(vocab, {m: c[rows] for m, c in codes.items()})
    from mgr_cli.data.dataset import ids_hash

    item_ids = _ids(dataset)
    unreachable = [item_ids[k] for k in range(n_old, n) if not fits[k]]
    tensors = {**{k: v for k, v in tok.tensors.items() if k not in ("item_tokens", "decodable")},
               "item_tokens": table, "decodable": fits.astype(np.uint8)}
    new_meta = {**meta, "n_items": n, "item_ids_hash": ids_hash(item_ids),
                "alignment_examples": int(fits.sum()) * len(meta["alignment_pairs"]),
                "added": {"base": os.path.basename(base), "items_before": n_old,
                          "items_added": n - n_old, "reachable": int(fits[n_old:].sum()),
                          "unreachable": unreachable}}
    inputs = [Input("dataset", *dataset)] + [Input(f"ids:{m}", ids[m], heads[m]) for m in vocab.modalities]
    inputs.append(Input(BASE, base, tok.header))
    config = {**tok.header["config"], "ids": [str(ids[m]) for m in vocab.modalities], "base": str(base)}
    return write_tensors(out, KIND, tensors, provenance=Provenance(command, config),
                         inputs=inputs, meta=new_meta)


def _ids(dataset: tuple[Path, dict]) -> list[str]:
    from mgr_cli.data import load_dataset

    ds, _ = load_dataset(dataset[0])
    return [it.id for it in ds.items]
