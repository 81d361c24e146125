"""Comparing evaluations: Table 2's overlap of two models' predictions (ONE definition,
used by `mgr compare` and the paper's reports) and the markdown table of
metrics files."""

from __future__ import annotations

from pathlib import Path

from mgr_cli.artifacts import read_jsonl
from mgr_cli.errors import MgrError


def hit_overlap(a: dict[str, dict], b: dict[str, dict], k: int = 5) -> float:
    """Jaccard overlap of the users two models (predictions by user) get right in their
    top k: of the users either model predicts correctly, the share both do (the paper's
    Table 2, "identical prediction results")."""
    hits = [{u for u, r in p.items() if r["rank"] is not None and r["rank"] <= k} for p in (a, b)]
    union = hits[0] | hits[1]
    return round(len(hits[0] & hits[1]) / len(union), 6) if union else 0.0


def top1_agreement(a: dict[str, dict], b: dict[str, dict]) -> float:
    """Share of the common users whose top prediction is the same item."""
    common = [u for u in a if u in b]
    same = sum(a[u]["items"][:1] == b[u]["items"][:1] for u in common)
    return round(same / len(common), 6) if common else 0.0


def predictions_by_user(path: Path | str) -> dict[str, dict]:
    _, rows = read_jsonl(path, "predictions")
    return {r["user"]: r for r in rows}


def overlap(a: Path | str, b: Path | str, k: int = 20) -> dict:
    """Agreement of two prediction files on the same users: Table 2's Jaccard overlap of
    the users both get right (Hits@5), the share of users whose top prediction is the
    same, and the mean overlap of the top-k lists. `mgr compare` and the
    Table 2 report both use these definitions."""
    pa, pb = predictions_by_user(a), predictions_by_user(b)
    common = [u for u in pa if u in pb]
    if not common:
        raise MgrError(f"{a} and {b} share no users")
    pa, pb = {u: pa[u] for u in common}, {u: pb[u] for u in common}
    topk = sum(len(set(pa[u]["items"][:k]) & set(pb[u]["items"][:k])) / k for u in common) / len(common)
    return {"users": len(common), "hit_overlap@5": hit_overlap(pa, pb), "top1_agreement": top1_agreement(pa, pb),
            f"top{k}_overlap": round(topk, 6)}


def metrics_table(paths: list[Path]) -> str:
    """One markdown row per metrics artifact (named by its folder): MRR, NDCG@5/10, Hits@5/10
    (each ± its standard error over users where recorded), and how many distinct items
    the users' lists hold: distinct top-1 items, catalogue coverage of the top-k lists."""
    cols = ["mrr", "ndcg@5", "ndcg@10", "hits@5", "hits@10"]
    lines = ["| run | users | " + " | ".join(c.upper().replace("HITS", "Hits") for c in cols)
             + " | top-1 items | coverage |", "|---|---|" + "---|" * (len(cols) + 2)]
    for p in paths:
        h, _ = read_jsonl(p, "metrics")
        meta = h["meta"]
        m, se = meta["metrics"], meta.get("standard_errors", {})
        cov = next((v for k, v in meta.items() if k.startswith("coverage@")), None)
        cells = [f"{m[c]:.4f} ± {se[c]:.4f}" if c in se else f"{m[c]:.4f}" for c in cols]
        lines.append(f"| {Path(p).parent.name} | {meta['users']} | " + " | ".join(cells)
                     + f" | {meta.get('distinct_top1', '-')} | "
                     + (f"{cov:.3f}" if cov is not None else "-") + " |")
    return "\n".join(lines)
