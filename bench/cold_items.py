"""Cold items on H&M: hold out the last 10 % of items (by first appearance), build and
train the whole pipeline without them, add them with `mgr items add` (frozen encoders and
quantizers, no retraining), and report how many are reachable at all (their full ID is a
path of the trained vocabulary) and how often the model ranks a held-out item in its
top-K when it is a user's next item.

    .venv/bin/python bench/cold_items.py --profile configs/tiny.toml --rows 20000 --k-core 3  # a tiny slice, minutes
    .venv/bin/python bench/cold_items.py --profile configs/demo.toml --layout lfpp --clip-model ViT-B-32 \\
        --clip-pretrained /path/to/open_clip_vit_b32.bin                                      # the real thing

Every stage runs as `python -m mgr_cli ...` with the profile's budget (--config). Users
whose test item is held out are the cold users: their whole history (held-out items
included, as catalogue items after the addition) is the request; warm users (test item
kept) are the reference, from the same run. Prints a table; writes nothing outside --work.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def mgr(*args, stdin: str | None = None) -> str:
    cmd = [sys.executable, "-m", "mgr_cli", *map(str, args)]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    return r.stdout


def slice_source(src: Path, work: Path, rows: int | None) -> tuple[Path, Path]:
    """The transactions file to read (the first `rows` rows of the week), the articles."""
    import gzip

    tx = src / "transactions_train.csv.gz"
    if not rows:
        return tx, src / "articles.csv"
    out = work / "raw" / "transactions_train.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(tx, "rt") as f, open(out, "w") as g:
        for k, line in enumerate(f):
            if k > rows:
                break
            g.write(line)
    return out, src / "articles.csv"


def hold_out(full: Path, work: Path, share: float):
    """The base dataset (held-out items removed from every sequence; users left with
    fewer than 3 items dropped) and the held-out items as a generic items file."""
    from mgr_cli.artifacts import Provenance
    from mgr_cli.data import load_dataset
    from mgr_cli.data.dataset import Dataset, save_dataset

    ds, _ = load_dataset(full)
    n_cold = max(1, math.ceil(share * len(ds.items)))
    cold = ds.items[-n_cold:]  # the item order is first appearance along the sequences
    keep = len(ds.items) - n_cold
    users, seqs = [], []
    for uid, seq in zip(ds.user_ids, ds.sequences):
        s = [i for i in seq if i < keep]
        if len(s) >= 3:
            users.append(uid)
            seqs.append(s)
    base = Dataset(ds.name + "-warm", ds.items[:keep], users, seqs, ds.max_history, ds.image_root)
    save_dataset(base, work / "base.dataset.jsonl", force=True,
                 provenance=Provenance("bench/cold_items.py", {"from": str(full), "held_out": n_cold}))
    with open(work / "cold.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "text", "image"])
        for it in cold:
            w.writerow([it.id, it.text, it.image or ""])
    return ds, {it.id for it in cold}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "hm")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "cold_items")
    ap.add_argument("--profile", type=Path, default=REPO / "configs" / "tiny.toml")
    ap.add_argument("--rows", type=int, default=None, help="only the first N transactions (a slice)")
    ap.add_argument("--k-core", type=int, default=5)
    ap.add_argument("--share", type=float, default=0.1, help="items held out (last by first appearance)")
    ap.add_argument("--layout", choices=("tiger", "lfpp"), default="tiger", help="tiger: text IDs; lfpp: text + image")
    ap.add_argument("--clip-model", default=None)
    ap.add_argument("--clip-pretrained", default=None)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--beams", type=int, default=20)
    a = ap.parse_args()
    if not (a.data / "articles.csv").is_file():
        sys.exit(f"{a.data}: H&M data not found (see ../shared/data/README.md)")
    w = a.work
    w.mkdir(parents=True, exist_ok=True)
    tx, art = slice_source(a.data, w, a.rows)
    full = w / "full.dataset.jsonl"
    mgr("prepare", "hm", a.data, "-o", full, "--interactions", tx, "--items", art,
        "--images", a.data / "images", "--k-core", a.k_core, "--force")
    ds, cold = hold_out(full, w, a.share)
    base = w / "base.dataset.jsonl"
    mods = ["text"] if a.layout == "tiger" else ["text", "image"]
    clip = [x for k, v in (("--clip-model", a.clip_model), ("--clip-pretrained", a.clip_pretrained))
            if v for x in (k, v)]
    ids = []
    for m in mods:
        mgr("embed", base, "-o", w / f"{m}.emb.safetensors", "--modality", m, "--config", a.profile,
            *clip, "--force")
        mgr("quantize", w / f"{m}.emb.safetensors", "-o", w / f"{m}.ids.safetensors",
            "--config", a.profile, "--force")
        ids.append(w / f"{m}.ids.safetensors")
    tok = w / "base.tok.safetensors"
    mgr("tokenize", base, *ids, "-o", tok, "--layout", a.layout, "--force")
    mgr("train", tok, "-o", w / "run", "--config", a.profile, "--force")
    s = json.loads(mgr("items", "add", w / "cold.csv", "-o", w / "grown", "--tokenized", tok,
                       "--images", ds.image_root, "--json", "--force"))
    # users of the full data, by whether their test item was held out
    requests = {"cold": [], "warm": []}
    for uid, seq in zip(ds.user_ids, ds.sequences):
        target = ds.items[seq[-1]].id
        requests["cold" if target in cold else "warm"].append(
            (json.dumps({"user": uid, "history": [ds.items[i].id for i in seq[:-1]]}), target))
    rows = []
    for group, reqs in requests.items():
        if not reqs:
            rows.append((group, 0, float("nan"), float("nan")))
            continue
        out = mgr("recommend", w / "run", w / "grown" / "tok.safetensors", "--top-k", a.top_k,
                  "--beams", max(a.beams, a.top_k), "--unknown", "skip",
                  stdin="\n".join(r for r, _ in reqs) + "\n")
        answers = [json.loads(x) for x in out.splitlines()]
        hits = sum(t in ans["items"] for (_, t), ans in zip(reqs, answers))
        cold_share = sum(sum(i in cold for i in ans["items"]) for ans in answers) / max(
            1, sum(len(ans["items"]) for ans in answers))
        rows.append((group, len(reqs), hits / len(reqs), cold_share))
    n_cold = s["items_added"]
    print(f"H&M{' (first ' + str(a.rows) + ' transactions)' if a.rows else ''}: {s['items_before']} "
          f"warm items, {n_cold} held out ({a.share:.0%}); layout {a.layout}; profile {a.profile.name}")
    print(f"reachable held-out items: {s['reachable']} of {n_cold} ({s['reachable'] / n_cold:.1%}); "
          + "; ".join(f"{m}: {v['shared_ids']} share an ID, last level grew "
                      f"{[g['after'] for g in v['grown_levels']] or 'no'}" for m, v in s["modalities"].items()))
    print(f"| users (test item) | n | Hit@{a.top_k} | held-out share of the top-{a.top_k} |")
    print("|---|---|---|---|")
    for group, n, hit, share in rows:
        print(f"| {group} | {n} | {hit:.4f} | {share:.4f} |")


if __name__ == "__main__":
    main()
