"""The dataset artifact: items (text, image, category fields), users' time-ordered
sequences, and the leave-one-out split every later stage uses.

On disk it is a JSONL artifact of kind "dataset": one record per item
(`{"item": idx, "id", "text", "image", "fields"}`) in item order, then one per user
(`{"user": idx, "id", "items": [item idx, ...]}`) with the full chronological sequence.
The split is derived, never stored twice: for each user the last item is the test
target, the second to last the validation target, the rest is training; histories are
the last `max_history` items before the target.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mgr_cli.artifacts import ArtifactError, Provenance, read_jsonl, write_jsonl
from mgr_cli.data.images import image_file

KIND = "dataset"
BASE = "base"  # the input role of the artifact an extended catalogue's artifact extends
SPLITS = ("train", "valid", "test")


@dataclass
class Item:
    id: str
    text: str = ""
    image: str | None = None  # relative to the dataset's image_root
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Example:
    user: int
    history: list[int]
    target: int


@dataclass
class Dataset:
    name: str
    items: list[Item]
    user_ids: list[str]
    sequences: list[list[int]]
    max_history: int = 20
    image_root: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def item_index(self) -> dict[str, int]:
        return {it.id: i for i, it in enumerate(self.items)}

    def image_path(self, idx: int, allow_outside: bool = False) -> Path | None:
        """The item's image file; one outside the image folder is refused (see image_file)."""
        rel = self.items[idx].image
        if rel is None or self.image_root is None:
            return None
        return image_file(self.image_root, rel, allow_outside)

    def examples(self, split: str) -> Iterator[Example]:
        """History -> next item examples of one split (leave-one-out, histories truncated)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        n = self.max_history
        for u in range(len(self.sequences)):
            if split in ("test", "valid"):
                history, target = self.held_out(u, split)
                yield Example(u, history[-n:], target)
            else:
                train = self.held_out(u, "valid")[0]
                for t in range(1, len(train)):
                    yield Example(u, train[max(0, t - n):t], train[t])

    def held_out(self, user: int, split: str) -> tuple[list[int], int]:
        """The leave-one-out rule, in one place: user's held-out item of `split` (test: the
        last; valid: the one before) and everything before it, untruncated. Every trainer,
        evaluator and reference row takes its split from here."""
        seq = self.sequences[user]
        if split == "test":
            return seq[:-1], seq[-1]
        if split == "valid":
            return seq[:-2], seq[-2]
        raise ValueError(f"no held-out item in split {split!r}; choose test or valid")

    def stats(self) -> dict[str, Any]:
        lengths = [len(s) for s in self.sequences]
        n_users = len(lengths)
        return {
            "users": n_users,
            "items": len(self.items),
            "interactions": sum(lengths),
            "mean_length": round(sum(lengths) / n_users, 4) if n_users else 0.0,
            "min_length": min(lengths, default=0),
            "max_length": max(lengths, default=0),
            "items_with_image": sum(1 for it in self.items if it.image is not None),
            "density": round(sum(lengths) / (n_users * len(self.items)), 6) if n_users else 0.0,
            "examples": {"train": sum(max(n - 3, 0) for n in lengths),
                         "valid": n_users, "test": n_users},
        }


def ids_hash(ids: list[str]) -> str:
    """A fingerprint of an id list in order: artifacts made from one dataset share it."""
    return "sha256:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()


def item_facts(item_ids, inputs=(), name: str | None = None, n_rows: int | None = None) -> dict:
    """What an artifact with one row per item says about its rows: their number, the
    fingerprint of their order and the dataset's name. The order is checked against every
    input that records one, so rows in another order than their inputs' are refused.
    `item_ids=None`: the rows are in the inputs' item order (a stage deriving one
    per-item artifact from others); `n_rows` is then checked against their item count.
    An input of role "base" is the catalogue these rows extend (`mgr items add`): its
    items must come first, in its order."""
    inputs = list(inputs)
    recorded = [(i, i.header.get("meta", {})) for i in inputs]
    recorded = [(i, m) for i, m in recorded if isinstance(m.get("item_ids_hash"), str)]
    if item_ids is None:
        if not recorded:
            raise ArtifactError("give the item ids: no input records an item order")
        first, m = recorded[0]
        h, n = m["item_ids_hash"], m.get("n_items", m.get("stats", {}).get("items"))
        if n_rows is not None and n is not None and n != n_rows:
            raise ArtifactError(f"{n_rows} rows, but {first.path} has {n} items; give one row per item")
    else:
        ids = [str(i) for i in item_ids]
        seen: set[str] = set()
        dup = next((i for i in ids if i in seen or seen.add(i)), None)
        if dup is not None:
            raise ArtifactError(f"item id {dup!r} appears more than once; give one row per item")
        h, n = ids_hash(ids), len(ids)
    for inp, m in [(i, m) for i, m in recorded if i.role == BASE]:
        k = m.get("n_items", m.get("stats", {}).get("items"))
        if item_ids is None or not isinstance(k, int) or k > n or ids_hash(ids[:k]) != m["item_ids_hash"]:
            raise ArtifactError(f"the items do not begin with those of {inp.path} (the catalogue "
                                "they extend), in its order; keep its items first")
    recorded = [(i, m) for i, m in recorded if i.role != BASE]
    for inp, m in recorded:
        if m["item_ids_hash"] != h:
            raise ArtifactError(f"the item ids are not those of {inp.path} ({inp.role}), in its "
                                "order; give one row per item of its dataset, in the dataset's order")
    for inp, m in ((i, i.header.get("meta", {})) for i in inputs):
        name = name or m.get("name" if inp.header.get("kind") == KIND else "dataset")
    return {"n_items": n, "dataset": name, "item_ids_hash": h}


def save_dataset(ds: Dataset, path: Path | str, *, provenance: Provenance | None = None,
                 sources: list[dict] = (), report: dict | None = None,
                 inputs: list = (), added: dict | None = None, force: bool = False) -> dict:
    """Write a dataset artifact; returns its header. `inputs` and `added` are for an
    extended catalogue (`mgr items add`): the dataset it extends (role "base") and what
    was added (meta.added)."""
    fields = sorted({k for it in ds.items for k in it.fields})
    modalities = [m for m, present in (("text", any(it.text for it in ds.items)),
                                       ("image", any(it.image for it in ds.items))) if present]
    meta = {
        "name": ds.name,
        "stats": ds.stats(),
        "split": {"scheme": "leave-one-out", "valid": "second to last item",
                  "test": "last item", "max_history": ds.max_history},
        "image_root": ds.image_root,
        "modalities": modalities,
        "fields": fields,
        "item_ids_hash": ids_hash([it.id for it in ds.items]),
        "user_ids_hash": ids_hash(ds.user_ids),
        "report": report or {},
        **({"added": added} if added else {}),
    }
    records: list[dict] = [
        {"item": i, "id": it.id, "text": it.text, "image": it.image, "fields": it.fields}
        for i, it in enumerate(ds.items)
    ]
    records += [{"user": u, "id": uid, "items": seq}
                for u, (uid, seq) in enumerate(zip(ds.user_ids, ds.sequences))]
    return write_jsonl(path, KIND, records, provenance=provenance, inputs=inputs,
                       sources=sources, meta=meta, force=force)


def load_dataset(path: Path | str) -> tuple[Dataset, dict]:
    """Read and verify a dataset artifact; returns (dataset, header)."""
    header, records = read_jsonl(path, KIND)
    meta = header["meta"]
    items: list[Item] = []
    users: list[str] = []
    seqs: list[list[int]] = []
    try:
        for r in records:
            if "item" in r:
                items.append(Item(r["id"], r["text"], r["image"], r["fields"]))
            else:
                users.append(r["id"])
                seqs.append(r["items"])
    except KeyError as e:
        raise ArtifactError(f"{path}: dataset record without field {e}") from None
    if len(items) != meta["stats"]["items"] or len(users) != meta["stats"]["users"]:
        raise ArtifactError(f"{path}: holds {len(items)} items and {len(users)} users, its "
                            f"header says {meta['stats']['items']} and {meta['stats']['users']}")
    ds = Dataset(meta["name"], items, users, seqs, meta["split"]["max_history"],
                 meta.get("image_root"), meta)
    return ds, header
