"""`mgr train --init-codes IDS`: start each semantic-ID token's embedding from its codebook
vector instead of at random.

A token <m_l_c> (modality m, level l, code c) stands for the codebook vector c of level l
of the quantizer that made m's IDs (RQ-VAE and LETTER codebooks, residual k-means
centroids), so tokens whose vectors lie close start close. The vectors (latent size D) go
to the model's width by a fixed random map with orthonormal columns or rows (seeded),
which keeps the inner products between one level's vectors exactly when D <= d_model. Each level is then scaled so that its rows have the mean norm
of the model's random rows, so only the directions carry over, not the residual levels'
shrinking sizes. Levels without a codebook (the uniqueness level) and the special tokens
keep their random start. T5 ties its output layer to these embeddings, so the output
scores start from the same geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mgr_cli.artifacts import read_tensors
from mgr_cli.errors import MgrError

BOOKS = ("quantizer.codebooks", "quantizer.centroids")  # RQ-VAE / LETTER, residual k-means


def init_code_embeddings(model, tok, paths: list[str], seed: int,
                         log=lambda s: None) -> list[tuple[str, int, str, dict]]:
    """Overwrite the rows of `model`'s token embedding that stand for the codes of the
    semantic-ID artifacts in `paths`, which must be the ones `tok` was made from.
    Returns (modality, levels initialised, path, header) per artifact, for the lineage."""
    vocab = tok.vocab
    made_from = {i["role"].removeprefix("ids:"): i["content_hash"]
                 for i in tok.header["inputs"] if i["role"].startswith("ids:")}
    emb = model.get_input_embeddings().weight
    target = float(emb.detach().norm(dim=1).mean())  # the random rows' norm, before any change
    out = []
    for path in paths:
        header, tensors = read_tensors(path, "semantic-ids")
        modality = header["meta"]["modality"]
        if made_from.get(modality) != header["content_hash"]:
            raise MgrError(f"{path}: not the {modality} IDs that {tok.path} was tokenized from; "
                           "give the semantic-ID artifact named in its inputs (mgr inspect)")
        if any(m == modality for m, *_ in out):
            raise MgrError(f"{path}: a second --init-codes for the {modality} IDs")
        books = next((torch.as_tensor(np.asarray(tensors[k])) for k in BOOKS if k in tensors), None)
        if books is None or books.ndim != 3:
            raise MgrError(f"{path}: holds no codebooks (imported or hierarchical k-means IDs); "
                           "--init-codes needs IDs from mgr quantize --method rqvae, letter or rkmeans")
        sizes = vocab.codebook_sizes[modality]
        levels = min(len(books), len(sizes))
        if any(books.shape[1] != sizes[lv] for lv in range(levels)):
            raise MgrError(f"{path}: codebooks of {books.shape[1]} codes do not match the "
                           f"vocabulary's {sizes[:levels]}; re-run mgr tokenize with these IDs")
        with torch.no_grad():
            proj = _projection(books.shape[2], emb.shape[1], seed)
            for lv in range(levels):
                rows = books[lv].double() @ proj
                rows *= target / float(rows.norm(dim=1).mean().clamp(min=1e-12))
                start = vocab.offsets[modality][lv]
                emb[start:start + sizes[lv]] = rows.to(emb.dtype)
        out.append((modality, levels, str(path), header))
        log(f"--init-codes: the {modality} tokens of levels 1-{levels} start from the codebook "
            f"vectors in {Path(path).name}")
    return out


def _projection(d_in: int, d_out: int, seed: int) -> torch.Tensor:
    """[d_in, d_out] with orthonormal rows (d_in <= d_out) or columns (d_in > d_out)."""
    g = np.random.default_rng([seed, 7]).standard_normal((max(d_in, d_out), min(d_in, d_out)))
    q, _ = np.linalg.qr(g)  # orthonormal columns
    q = torch.from_numpy(q)
    return q.T if d_in <= d_out else q
