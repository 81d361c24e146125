"""Each target's numbers, read from the stage artifacts, and the paper's findings checked on them."""

from __future__ import annotations

import json
from pathlib import Path

from mgr_cli.artifacts import read_jsonl
from mgr_cli.evaluation.compare import hit_overlap, predictions_by_user, top1_agreement
from mgr_cli.errors import MgrError
from mgr_cli.reproduce.paper import ABLATION, ROWS


def _metrics(path: Path) -> dict | None:
    if not path.exists():
        return None
    h, _ = read_jsonl(path, "metrics")
    se = {f"{k}_se": v for k, v in h["meta"].get("standard_errors", {}).items()}
    return {"users": h["meta"]["users"], **h["meta"]["metrics"], **se}


def _eval(build: Path, ds: str, stem: str) -> dict | None:
    return _metrics(build / ds / f"{stem}.eval" / "metrics.jsonl")


def _need(value, what: Path):
    if value is None:
        raise MgrError(f"{what} is missing: build it with make (the stage targets make it)")
    return value


def table1(build: Path, sets: list[str]) -> dict:
    out = {}
    for ds in sets:
        path = build / ds / "table1.json"
        data = json.loads(_need(path.read_text() if path.exists() else None, path))
        out[ds] = {r["pair"]: round(r["ami"], 4) for r in data["rows"]}
    return out


def table2(build: Path, sets: list[str]) -> dict:
    """Per pair of input modalities: the Jaccard overlap of the users each model gets
    right (Hits@5), the paper's "identical prediction results", and the share of users
    whose top-1 item agrees."""
    out = {}
    for ds in sets:
        preds = {}
        for m, stem in (("image", "tiger-image"), ("text", "tiger-text"), ("fused", "mgr-ef")):
            path = build / ds / f"{stem}.eval" / "predictions.jsonl"
            preds[m] = predictions_by_user(_need(path if path.exists() else None, path))
        pairs = (("Img vs. Txt", "image", "text"), ("Img vs. Multimodal", "image", "fused"),
                 ("Txt vs. Multimodal", "text", "fused"))
        out[ds] = {name: hit_overlap(preds[a], preds[b]) for name, a, b in pairs}
        out[ds]["top-1 agreement"] = {name: top1_agreement(preds[a], preds[b]) for name, a, b in pairs}
    return out


def table3(build: Path, sets: list[str]) -> dict:
    out = {}
    for ds in sets:
        row = {}
        for name, stem in (("Text only", "mgr-lf.eval-text"), ("Image only", "mgr-lf.eval-image"),
                           ("Multimodal", "mgr-lf.eval")):
            path = build / ds / stem / "metrics.jsonl"
            row[name] = _need(_metrics(path), path)["hits@5"]
        out[ds] = row
    return out


def table5(build: Path, sets: list[str]) -> dict:
    out = {}
    for ds in sets:
        rows = {}
        for stem, _ in ROWS:
            m = _eval(build, ds, stem)
            if m is not None:
                rows[stem] = {"mrr": m["mrr"], "ndcg@5": m["ndcg@5"], "hits@5": m["hits@5"],
                              "users": m["users"],
                              **{k: m[k] for k in ("mrr_se", "ndcg@5_se", "hits@5_se") if k in m}}
        if not rows:
            raise MgrError(f"{build / ds}: no evaluations found (build them with make)")
        out[ds] = rows
    return out


def fig5(build: Path, sets: list[str]) -> dict:
    out = {}
    for ds in sets:
        out[ds] = {}
        for stem, label in ABLATION:
            path = build / ds / f"{stem}.eval" / "metrics.jsonl"
            m = _need(_metrics(path), path)
            out[ds][label] = {"mrr": m["mrr"], "ndcg@5": m["ndcg@5"], "hits@5": m["hits@5"]}
    return out


def fig6(build: Path, sets: list[str], levels: list[int], sizes: list[int], main_levels: int,
         main_size: int) -> dict:
    out = {}
    for ds in sets:
        def get(tag):
            stem = "mgr-lfpp+align" if tag is None else f"mgr-lfpp.{tag}+align"
            path = build / ds / f"{stem}.eval" / "metrics.jsonl"
            m = _need(_metrics(path), path)
            return {"mrr": m["mrr"], "ndcg@5": m["ndcg@5"], "hits@5": m["hits@5"]}
        out[ds] = {"length": {str(L): get(None if L == main_levels else f"L{L}")
                              for L in sorted(set(levels) | {main_levels})},
                   "codebook": {str(K): get(None if K == main_size else f"K{K}")
                                for K in sorted(set(sizes) | {main_size})}}
    return out


# ---------------------------------------------------------------- findings

def findings(target: str, data: dict) -> dict:
    """The paper's claims, checked per dataset (True / False / None when not measurable)."""
    out = {}
    for ds, d in data.items():
        if target == "table1":
            t, i = d["Txt vs. Multimodal"], d["Img vs. Multimodal"]
            out[ds] = {"text dominates early fusion (Txt-vs-MM > Img-vs-MM)": t > i,
                       "one modality dominates early fusion (one MM AMI >= 1.5x the other)":
                       max(t, i) >= 1.5 * max(min(t, i), 1e-9)}
        elif target == "table2":
            pairs = [d[k] for k in ("Img vs. Txt", "Img vs. Multimodal", "Txt vs. Multimodal")]
            out[ds] = {"EF predictions closest to the text model (Txt-vs-MM highest)":
                       d["Txt vs. Multimodal"] >= max(pairs),
                       "EF predictions closest to one unimodal model (an X-vs-MM highest)":
                       max(d["Txt vs. Multimodal"], d["Img vs. Multimodal"]) >= d["Img vs. Txt"]}
        elif target == "table3":
            out[ds] = {"late fusion's full-ID deficit (multimodal < both single modalities)":
                       d["Multimodal"] < min(d["Text only"], d["Image only"])}
        elif target == "table5":
            uni = [d[s]["ndcg@5"] for s in ("tiger-text", "tiger-image") if s in d]
            multi = [d[s]["ndcg@5"] for s in ("mgr-ef", "mgr-lf", "mgr-lfpp+align") if s in d]
            f = {}
            if uni and multi:
                f["multimodal above unimodal (best MGR > best TIGER, NDCG@5)"] = max(multi) > max(uni)
            if "mgr-lf" in d and "mgr-lfpp+align" in d:
                f["LF++ above LF (NDCG@5)"] = d["mgr-lfpp+align"]["ndcg@5"] > d["mgr-lf"]["ndcg@5"]
            if "popular" in d:
                floor = d["popular"]["hits@5"]
                trained = [s for s in d if s != "popular"]
                f["every trained row above the most-popular list (Hits@5)"] = all(
                    d[s]["hits@5"] > floor for s in trained)
            out[ds] = f
        elif target == "fig5":
            both = d["both (MGR-LF++)"]["ndcg@5"]
            out[ds] = {"both designs best (NDCG@5)": both >= max(v["ndcg@5"] for v in d.values()),
                       "each design helps over neither": all(
                           d[k]["ndcg@5"] > d["neither"]["ndcg@5"]
                           for k in ("special tokens only", "alignment only"))}
        elif target == "fig6":
            sizes = d["codebook"]
            best = max(sizes, key=lambda k: sizes[k]["ndcg@5"])
            out[ds] = {f"best codebook size is 256 (ours: {best})": best == "256"}
    return out
