"""The frozen quantizer stored in a semantic-ID artifact, and placing new items with it.

`mgr quantize` keeps what assigns codes, so that items added later (`mgr items add`) get
codes from the very quantizer the catalogue's IDs came from, without retraining:

    rqvae, letter   the RQ-VAE encoder and codebooks (`quantizer.encoder.*`,
                    `quantizer.codebooks` [levels, K, latent])
    rkmeans         the centroids of every level (`quantizer.centroids` [levels, K, dim])
    every method    the standardisation (`quantizer.mean`, `quantizer.sd` [dim]) when the
                    embeddings were standardised

The tensors sit beside `codes` in the artifact; its meta.quantizer says which (kind,
shapes, tensor names). hierarchical k-means has none: its IDs are a recursive split of the
catalogue, with nothing that places a new item. `assign(frozen, x)` gives the codes before
the uniqueness level; on the vectors the IDs were made from it gives their codes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mgr_cli.artifacts import ArtifactError, read_tensors
from mgr_cli.errors import MgrError

PREFIX = "quantizer."
ENCODE_BATCH = 8192  # RQVAE.encode's batch: the same row blocks give the same codes


@dataclass
class Frozen:
    """A quantizer that assigns codes: its kind (a key of ASSIGNERS), JSON-able shapes,
    and tensors by name (without the `quantizer.` prefix)."""

    kind: str
    spec: dict
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    standardize: bool = False

    def meta(self) -> dict:
        return {"kind": self.kind, **self.spec, "standardize": self.standardize,
                "tensors": sorted(PREFIX + k for k in self.tensors)}

    def stored(self) -> dict[str, np.ndarray]:
        return {PREFIX + k: np.ascontiguousarray(v) for k, v in self.tensors.items()}


def rqvae_frozen(model) -> Frozen:
    """The encoder and codebooks of a trained RQVAE (its decoder and LETTER's collaborative
    map do not place items)."""
    cfg = model.cfg
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()
             if k.startswith("encoder.") or k == "codebooks"}
    in_dim = int(model.encoder[0].weight.shape[1])
    return Frozen("rqvae", {"in_dim": in_dim, "hidden": list(cfg.hidden),
                            "latent_dim": cfg.latent_dim, "levels": cfg.levels,
                            "codebook_size": cfg.codebook_size}, state)


def centroids_frozen(centres) -> Frozen:
    c = np.stack([np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t)
                  for t in centres]).astype(np.float32)
    return Frozen("rkmeans", {"levels": int(c.shape[0]), "codebook_size": int(c.shape[1]),
                              "dim": int(c.shape[2])}, {"centroids": c})


def _rqvae_assign(fz: Frozen, x):
    import torch

    from mgr_cli.quantize.rqvae import RQVAE, RQVAEConfig

    s = fz.spec
    model = RQVAE(int(s["in_dim"]), RQVAEConfig(levels=int(s["levels"]),
                                                codebook_size=int(s["codebook_size"]),
                                                latent_dim=int(s["latent_dim"]),
                                                hidden=[int(h) for h in s["hidden"]]))
    state = {k: torch.from_numpy(np.array(v)) for k, v in fz.tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise ArtifactError(f"the stored RQ-VAE does not fit its recorded shapes (missing "
                            f"{[k for k in missing if not k.startswith('decoder.')][:2]}, "
                            f"unexpected {unexpected[:2]}); re-run mgr quantize")
    model.eval()
    with torch.no_grad():
        return torch.cat([model.quantize(model.encoder(x[i:i + ENCODE_BATCH]))[0]
                          for i in range(0, len(x), ENCODE_BATCH)])


def _rkmeans_assign(fz: Frozen, x):
    import torch

    from mgr_cli.quantize.kmeans import _sq_dist

    residual, codes = x.clone(), []
    for c in torch.from_numpy(np.array(fz.tensors["centroids"])):
        a = _sq_dist(residual, c).argmin(1)
        codes.append(a)
        residual -= c[a]
    return torch.stack(codes, 1)


# kind -> assign(frozen, standardised float32 torch [n, dim]) -> codes [n, levels]
ASSIGNERS: dict[str, Callable] = {"rqvae": _rqvae_assign, "rkmeans": _rkmeans_assign}


def assign(fz: Frozen, x: np.ndarray) -> np.ndarray:
    """Codes [n, levels] (before the uniqueness level) of vectors x [n, dim] in the space
    the quantizer was trained on (the raw embeddings: standardised here as they were)."""
    import torch

    if fz.kind not in ASSIGNERS:
        raise MgrError(f"no way to place items with a stored {fz.kind!r} quantizer "
                       f"(known: {', '.join(ASSIGNERS)})")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    want = fz.spec.get("in_dim", fz.spec.get("dim"))
    if xt.ndim != 2 or xt.shape[1] != want:
        raise MgrError(f"vectors of shape {tuple(xt.shape)} for a quantizer of {want}-d inputs")
    if fz.standardize:
        xt = (xt - torch.from_numpy(np.array(fz.tensors["mean"]))) / torch.from_numpy(
            np.array(fz.tensors["sd"]))
    tensors = {k: v for k, v in fz.tensors.items() if k not in ("mean", "sd")}
    codes = ASSIGNERS[fz.kind](Frozen(fz.kind, fz.spec, tensors), xt)
    return codes.numpy().astype(np.int64)


def load_quantizer(path: Path | str) -> tuple[Frozen, np.ndarray, dict]:
    """The frozen quantizer of a semantic-ID artifact, its codes and header; a one-line
    error when it has none (made before quantizers were stored, imported, hierarchical)."""
    header, tensors = read_tensors(path, "semantic-ids")
    meta = header["meta"]
    q = meta.get("quantizer")
    if q is None:
        method = meta.get("method")
        if method == "hierarchical":
            raise MgrError(f"{path}: hierarchical IDs cannot place new items (the HC-indexer "
                           "splits the catalogue itself; there is no quantizer to apply); "
                           "quantize with rqvae, letter or rkmeans to add items")
        if method == "import":
            raise MgrError(f"{path}: imported IDs carry no quantizer that could place new "
                           "items; add the items where the IDs were made, then import again")
        raise MgrError(f"{path}: stores no quantizer (made by an older mgr, or by method "
                       f"{method!r}); re-run mgr quantize to add items to it")
    names = [n for n in q.get("tensors", []) if isinstance(n, str)]
    if any(n not in tensors for n in names) or q.get("kind") not in ASSIGNERS:
        raise ArtifactError(f"{path}: damaged stored quantizer (tensors {names[:3]}); "
                            "re-run mgr quantize")
    spec = {k: v for k, v in q.items() if k not in ("kind", "standardize", "tensors")}
    fz = Frozen(q["kind"], spec, {n[len(PREFIX):]: tensors[n] for n in names},
                bool(q.get("standardize")))
    return fz, tensors["codes"], header


def free_codes(old: np.ndarray, base_new: np.ndarray, unique_level: bool
               ) -> tuple[np.ndarray, int]:
    """Full codes of new items given their codes before the uniqueness level: with a
    uniqueness level, the smallest last-level code no item (old, or new before it) with
    the same codes uses; without one, the codes as they are. Returns (codes, how many new
    items share their full ID with another item)."""
    if unique_level:
        used: dict[tuple, set] = {}
        for row in old:
            used.setdefault(tuple(row[:-1].tolist()), set()).add(int(row[-1]))
        extra = np.zeros(len(base_new), dtype=np.int64)
        for k, row in enumerate(base_new):
            taken = used.setdefault(tuple(row.tolist()), set())
            extra[k] = next(c for c in range(len(taken) + 1) if c not in taken)
            taken.add(int(extra[k]))
        full = np.concatenate([base_new, extra[:, None]], axis=1)
    else:
        full = base_new.astype(np.int64)
    everything = np.concatenate([old, full])
    _, inverse, counts = np.unique(everything, axis=0, return_inverse=True, return_counts=True)
    shared = int((counts[inverse.ravel()[len(old):]] > 1).sum())
    return full, shared
