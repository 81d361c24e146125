"""The embeddings artifact: its public writer (which owns the header) and reader.

    from mgr_cli.encoders import save_embeddings, load_embeddings
    save_embeddings("my.emb.safetensors", item_ids, vectors, modality="text",
                    encoders={"text": {"family": "mine", "model": "my-encoder"}},
                    inputs=[Input("dataset", "beauty.dataset.jsonl", dataset_header)])
    vectors, header = load_embeddings("my.emb.safetensors")

One safetensors tensor, `embeddings` (float32, [n_items, dim]), rows in the dataset's
item order; the header's `meta` says what they are (docs/artifacts.md lists the fields).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mgr_cli.artifacts import ArtifactError, Input, Provenance, read_tensors, write_tensors
from mgr_cli.data.dataset import item_facts

KIND = "embeddings"
TENSOR = "embeddings"
OWNED = ("modality", "dim", "n_items", "dataset", "item_ids_hash", "encoders", "normalized",
         "fusion", "standin", "blank_images")


def as_vectors(vectors: Any, what: str = "vectors") -> np.ndarray:
    """A float32 [rows, dim] copy of `vectors` (numpy or torch), refusing other shapes,
    non-float dtypes (integers, booleans, strings, objects) and NaN or inf."""
    if hasattr(vectors, "detach"):  # a torch tensor, without importing torch
        vectors = vectors.detach().cpu()
        vectors = vectors.float() if str(vectors.dtype) == "torch.bfloat16" else vectors
        vectors = vectors.numpy()
    x = np.asarray(vectors)
    if x.dtype.kind != "f":
        raise ArtifactError(f"{what} have dtype {x.dtype}; expected floating point "
                            "(float16, float32 or float64): convert them with .astype('float32')")
    if x.ndim != 2 or 0 in x.shape:
        raise ArtifactError(f"{what} have shape {tuple(x.shape)}; expected a 2-d array "
                            "[items, dim] with at least one item and one dimension")
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    return x


def save_embeddings(path: Path | str, item_ids: Sequence[str] | None, vectors: Any, *,
                    modality: str, encoders: dict | None = None, normalized: bool | None = None,
                    fusion: str | None = None, standin: bool = False,
                    blank_images: Iterable[str] = (), dataset: str | None = None,
                    meta: dict | None = None, provenance: Provenance | None = None,
                    inputs: Iterable[Input] = (), sources: Iterable[dict] = (),
                    force: bool = False) -> dict:
    """Write an embeddings artifact (atomically) and return its header.

    Row k of `vectors` is item `item_ids[k]`; the rows must be in the item order of every
    input that records one (a dataset, another embeddings artifact), which is checked.
    `item_ids=None` means "in the inputs' item order" (for artifacts derived from others).
    `normalized=None` is measured (every row of unit length). `dataset` (a name) defaults
    to the inputs'. `meta` adds facts of the producer's own; it may not set the fields this
    writer owns (`OWNED`)."""
    x = as_vectors(vectors)
    if item_ids is not None and len(item_ids) != len(x):
        raise ArtifactError(f"{len(item_ids)} item ids for {len(x)} vectors; give one row per item")
    if not isinstance(modality, str) or not modality:
        raise ArtifactError("modality must be a non-empty name (text, image, fused, ...)")
    clash = sorted(set(meta or {}) & set(OWNED))
    if clash:
        raise ArtifactError(f"meta may not set {', '.join(clash)}: save_embeddings writes them "
                            "(pass them as its arguments)")
    inputs = list(inputs)
    facts = item_facts(item_ids, inputs, dataset, n_rows=len(x))
    bad = np.where(~np.isfinite(x).all(1))[0]
    if len(bad):
        which = f"item {str(item_ids[bad[0]])!r}" if item_ids is not None else f"row {bad[0]}"
        raise ArtifactError(f"{len(bad)} vectors hold NaN or inf (e.g. {which}); fix them first")
    if normalized is None:
        normalized = bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4))
    head = {"modality": modality, "dim": int(x.shape[1]), **facts, "encoders": encoders or {},
            "normalized": bool(normalized), "fusion": fusion, "standin": bool(standin),
            "blank_images": [str(i) for i in blank_images]}
    return write_tensors(path, KIND, {TENSOR: x}, provenance=provenance, inputs=inputs,
                         sources=sources, meta={**head, **(meta or {})}, force=force)


def load_embeddings(path: Path | str) -> tuple[np.ndarray, dict]:
    """Read and verify an embeddings artifact: (vectors [n_items, dim] float32, header)."""
    header, tensors = read_tensors(path, KIND)
    x = tensors.get(TENSOR)
    n = header["meta"].get("n_items")
    if x is None or x.ndim != 2 or (n is not None and len(x) != n):
        raise ArtifactError(f"{path}: damaged embeddings artifact (no [{n}, dim] tensor "
                            f"{TENSOR!r}); re-create it")
    return x, header
