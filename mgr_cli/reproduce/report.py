"""Rendering a target's markdown and JSON, and REPRODUCTION.md."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from mgr_cli.artifacts import read_header
from mgr_cli.artifacts.lineage import lineage
from mgr_cli.errors import MgrError
from mgr_cli.reproduce import tables
from mgr_cli.reproduce.charts import bar_chart, stack_images
from mgr_cli.reproduce.paper import (
    ABLATION,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
    PAPER_TABLE5,
    ROWS,
    SETS,
    TARGETS,
)
from mgr_cli.reproduce.tables import _need, findings


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _with_se(row: dict, key: str) -> str:
    """`0.0123 ± 0.0010` when the evaluation recorded a standard error."""
    se = row.get(f"{key}_se")
    return f"{row[key]:.4f} ± {se:.4f}" if se is not None else _fmt(row[key])


def _md_table(head: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]


def machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def commands(paths: list[Path]) -> list[str]:
    """Every command that made these artifacts and their ancestors, parents first."""
    seen, out = set(), []

    def walk(node):
        for parent in node.parents:
            walk(parent)
        if node.header is None:
            return
        cmd = node.header.get("created_by", {}).get("command")
        if cmd and cmd not in seen:
            seen.add(cmd)
            out.append(cmd)

    for p in paths:
        if p.exists():
            walk(lineage(p))
    return out


def data_lines(build: Path, sets: list[str]) -> list[str]:
    lines = []
    for ds in sets:
        path = build / ds / "dataset.jsonl"
        if not path.exists():
            continue
        h = read_header(path)
        s = h["meta"].get("stats", {})
        src = h.get("config", {}).get("source", "")
        lines.append(f"- {ds}: {SETS.get(ds, ds)}; {s.get('users')} users, {s.get('items')} items, "
                     f"{s.get('interactions')} interactions (from {src})")
    return lines


def encoder_lines(build: Path, sets: list[str]) -> list[str]:
    """What embedded each dataset, read from its embeddings artifacts."""
    lines = []
    for ds in sets:
        described = []
        for name in ("text", "image", "textlm"):
            path = build / ds / f"{name}.emb.safetensors"
            if not path.exists():
                continue
            for modality, enc in read_header(path)["meta"]["encoders"].items():
                what = enc.get("model", "?")
                if enc.get("pretrained"):
                    what += f" ({enc['pretrained']})"
                if enc.get("pooling"):
                    what += f", {enc['pooling']} pooling"
                label = "text LM" if name == "textlm" else modality
                described.append(f"{label}: {enc.get('family', '?')} {what}"
                                 + (" [stand-in, NOT CLIP]" if enc.get("standin") else ""))
        if not described:
            described = ["no embedding step (semantic IDs imported or text only)"]
        lines.append(f"- {ds}: " + "; ".join(described))
    return lines


def _artifacts(build: Path, ds: str, target: str) -> list[Path]:
    d = build / ds
    names = {"table1": ["table1.json"], "fig4": ["table1.json"],
             "table2": [f"{s}.eval/metrics.jsonl" for s in ("tiger-image", "tiger-text", "mgr-ef")],
             "table3": ["mgr-lf.eval-text/metrics.jsonl", "mgr-lf.eval-image/metrics.jsonl",
                        "mgr-lf.eval/metrics.jsonl"],
             "table5": [f"{s}.eval/metrics.jsonl" for s, _ in ROWS],
             "fig5": [f"{s}.eval/metrics.jsonl" for s, _ in ABLATION],
             "fig6": [p.relative_to(d).as_posix() for p in sorted(d.glob("mgr-lfpp*+align.eval/metrics.jsonl"))]}
    found = [d / n for n in names[target]]
    ids = [d / f"{m}.ids.safetensors" for m in ("text", "image", "fused")]
    return [p for p in found + (ids if target in ("table1", "fig4") else []) if p.exists()]


# ---------------------------------------------------------------- rendering

def render(target: str, data: dict, build: Path, sets: list[str], profile: str, budget: str) -> str:
    title = {"table1": "Table 1: AMI of first-level semantic IDs across modalities",
             "table2": "Table 2: share of identical top predictions across input modalities",
             "table3": "Table 3: MGR-LF Hits@5 decoding one modality vs the full ID",
             "table5": "Table 5: every method, MRR / NDCG@5 / Hits@5",
             "fig4": "Figure 4: items sharing a first text ID vs a first image ID",
             "fig5": "Figure 5: LF++ ablation (special tokens, alignment pre-training)",
             "fig6": "Figure 6: MGR-LF++ vs semantic ID length and codebook size"}[target]
    lines = [f"# {title}", "",
             f"Profile `{profile}`; budget and encoders at the end. Ours in **bold**; the "
             "paper's rows are its Amazon Toys / Beauty / Sports numbers with CLIP "
             "encoders (its images are not available here).", ""]
    if target in ("table1", "table2", "table3"):
        cols = {"table1": ["Img vs. Txt", "Img vs. Multimodal", "Txt vs. Multimodal"],
                "table2": ["Img vs. Txt", "Img vs. Multimodal", "Txt vs. Multimodal"],
                "table3": ["Text only", "Image only", "Multimodal"]}[target]
        paper = {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2, "table3": PAPER_TABLE3}[target]
        rows = [[f"**{ds}** (ours)", *[data[ds][c] for c in cols]] for ds in data]
        rows += [[f"{dom} (paper)", *vals] for dom, vals in paper.items()]
        lines += _md_table(["dataset", *cols], rows)
        if target == "table2":
            lines += ["", "Ours: Jaccard overlap of the users that each model gets right (Hits@5); "
                      "the share of users whose top-1 item agrees, beside it:", ""]
            lines += _md_table(["dataset (top-1 agreement)", *cols],
                               [[ds, *[data[ds]["top-1 agreement"][c] for c in cols]] for ds in data])
    elif target == "table5":
        for ds, rows in data.items():
            lines += [f"## {ds}", ""]
            body = []
            floor = rows.get("popular", {}).get("hits@5")
            for stem, label in ROWS:
                if stem in rows:
                    r = rows[stem]
                    pb = PAPER_TABLE5.get(stem, {}).get("Beauty")
                    below = floor is not None and stem != "popular" and r["hits@5"] <= floor
                    body.append([label + (" **(not above most popular)**" if below else ""),
                                 *[_with_se(r, k) for k in ("mrr", "ndcg@5", "hits@5")], r["users"],
                                 f"{pb[0]:.4f} / {pb[1]:.4f} / {pb[2]:.4f}" if pb else ""])
            lines += _md_table(["method", "MRR", "NDCG@5", "Hits@5", "users",
                                "paper, Beauty (MRR / NDCG / Hits@5)"], body) + [""]
        lines += ["Each metric: the mean over users ± its standard error. A trained row at or "
                  "below the most-popular list is marked.", ""]
    elif target == "fig5":
        for ds, d in data.items():
            lines += [f"## {ds}", ""] + _md_table(
                ["variant", "MRR", "NDCG@5", "Hits@5"],
                [[k, v["mrr"], v["ndcg@5"], v["hits@5"]] for k, v in d.items()]) + [""]
        lines += ["![Figure 5](fig5.png)", ""]
    elif target == "fig6":
        for ds, d in data.items():
            for axis, name in (("length", "semantic ID length (levels, + uniqueness level)"),
                               ("codebook", "codebook size")):
                lines += [f"## {ds}: {name}", ""] + _md_table(
                    [name, "MRR", "NDCG@5", "Hits@5"],
                    [[k, v["mrr"], v["ndcg@5"], v["hits@5"]] for k, v in d[axis].items()]) + [""]
        lines += ["![Figure 6](fig6.png)", ""]
    elif target == "fig4":
        lines += ["![Figure 4](fig4.png)", "",
                  "Each block: a pivot item, then items sharing its first TEXT ID (top row) and "
                  "items sharing its first IMAGE ID (bottom row)."]
    checks = findings(target, data) if target != "fig4" else {}
    if checks:
        lines += ["", "## The paper's findings on our data", ""]
        for ds, f in checks.items():
            for claim, ok in f.items():
                lines.append(f"- {ds}: {claim}: **{'holds' if ok else 'does not hold'}**")
    lines += ["", "## Data", ""] + data_lines(build, sets)
    lines += ["", "## Encoders", ""] + encoder_lines(build, sets)
    lines += ["", "## Budget", "", f"`PROFILE={profile}`: `{budget}`"]
    lines += ["", "## Machine", "", "```", json.dumps(machine(), indent=1), "```"]
    cmds = []
    for ds in sets:
        cmds += commands(_artifacts(build, ds, target))
    lines += ["", "## Commands (from the artifacts' provenance, parents first)", "", "```"]
    lines += list(dict.fromkeys(cmds)) + ["```", ""]
    return "\n".join(lines)


def build_target(target: str, build: Path, sets: list[str], out: Path, profile: str, budget: str,
                 levels: list[int], sizes: list[int], main_levels: int, main_size: int) -> dict:
    if target not in TARGETS:
        raise MgrError(f"unknown target {target!r}; one of {', '.join(TARGETS)}")
    out.mkdir(parents=True, exist_ok=True)
    if target == "fig4":
        pngs = []
        for ds in sets:
            p = build / ds / "figure4.png"
            pngs.append((ds, _need(p if p.exists() else None, p)))
        stack_images(pngs, out / "fig4.png")
        data = {ds: str(p) for ds, p in pngs}
    elif target == "fig6":
        data = tables.fig6(build, sets, levels, sizes, main_levels, main_size)
    else:
        data = {"table1": tables.table1, "table2": tables.table2, "table3": tables.table3,
                "table5": tables.table5, "fig5": tables.fig5}[target](build, sets)
    if target == "fig5":
        bar_chart({ds: {k: v["ndcg@5"] for k, v in d.items()} for ds, d in data.items()},
                  "LF++ ablation", out / "fig5.png", "NDCG@5")
    if target == "fig6":
        bar_chart({f"{ds} L": {f"L={k}": v["ndcg@5"] for k, v in d["length"].items()}
                   for ds, d in data.items()}
                  | {f"{ds} K": {f"K={k}": v["ndcg@5"] for k, v in d["codebook"].items()}
                     for ds, d in data.items()}, "MGR-LF++ sweeps", out / "fig6.png", "NDCG@5")
    record = {"target": target, "profile": profile, "budget": budget, "datasets": sets,
              "results": data, "findings": findings(target, data) if target != "fig4" else {},
              "machine": machine()}
    (out / f"{target}.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / f"{target}.md").write_text(render(target, data, build, sets, profile, budget))
    return record


def reproduction(results: Path, out: Path) -> None:
    """REPRODUCTION.md: every target's numbers next to the paper's and the findings."""
    parts = [REPRO_HEAD]
    glance = []
    for target in TARGETS:
        path = results / f"{target}.json"
        if path.exists():
            for ds, found in json.loads(path.read_text()).get("findings", {}).items():
                glance += [f"| {target} | {claim} | {ds} | {'holds' if ok else '**does not hold**'} |"
                           for claim, ok in found.items()]
    if glance:
        parts.append("## The paper's findings at a glance\n\n| target | finding | dataset | on our data |\n"
                     "|---|---|---|---|\n" + "\n".join(glance) + "\n")
    notes = results / "notes.md"  # hand-written reading of the results, if any
    if notes.exists():
        parts.append(notes.read_text().strip() + "\n")
    for target in TARGETS:
        path = results / f"{target}.json"
        if not path.exists():
            parts.append(f"## {target}\n\nNot built yet (`make {target}`).\n")
            continue
        rec = json.loads(path.read_text())
        parts.append(f"## {target} (profile `{rec['profile']}`; datasets: {', '.join(rec['datasets'])})\n")
        md = (results / f"{target}.md").read_text().split("\n## Data")[0]
        body = "\n".join(md.splitlines()[4:]).strip().replace("## The paper's findings", "### The paper's findings")
        link = os.path.relpath(results / f"{target}.md", out.parent)
        png = os.path.relpath(results / f"{target}.png", out.parent)
        body = body.replace(f"]({target}.png)", f"]({png})")
        parts.append(f"{body}\n\nBudget: `{rec['budget']}`. Data, encoders, machine and commands: "
                     f"[{link}]({link})\n")
    parts.append(REPRO_DIFFERENCES)
    out.write_text("\n".join(parts))


REPRO_HEAD = """# Reproducing "Beyond Unimodal Boundaries" (MGR-LF++) with mgr

Built by `make paper` (each table and figure also alone: `make table1` ...). This file
is regenerated from `results/*.json`; the paper's numbers (Amazon Toys / Beauty / Sports
with CLIP encoders) are printed next to ours. Our datasets differ (see the end), so the
comparison is about the paper's findings, not its exact numbers.
"""

REPRO_DIFFERENCES = """## Known differences

- **Data.** The paper's Amazon product images are not obtainable here. Multimodal
  tables use H&M (product photos) and MovieLens-100K (posters); Amazon 2018 Instruments
  enters with MQL4GRec's real image- and text-derived IDs (no embedding step);
  Amazon 2014 Beauty is text only (text rows and SASRec).
- **Encoders.** No CLIP weights can be downloaded here. The stand-ins are MiniLM
  (text, 384-d) and EfficientNet-Lite0 (image, 1280-d), labelled as such in every
  artifact; they do not share an embedding space, so early fusion concatenates the two
  (standardised per dimension before the RQ-VAE), which gives the image 1280 of 1664
  dimensions. Pass a local CLIP checkpoint with `CLIP_PRETRAINED=/path` (and
  `CLIP_MODEL`) to every target to use CLIP's two towers unchanged otherwise.
- **TIGER (text LM).** The paper's TIGER(BERT) uses BERT; the only text language model
  on these machines is MiniLM, used here with CLS pooling (`TEXT_LM`, `TEXT_LM_POOLING`
  choose another local encoder), next to mean pooling for TIGER (text).
- **Budget.** The `small` profile trains a 2+2-layer, d_model 64 T5 for a few epochs and
  evaluates a seeded random sample of test users (the same users for every method of a
  dataset) so that each dataset finishes in well under an hour on 2 CPU cores; for
  MovieLens (every user rated at least 20 films) it keeps the last 10 items of history
  instead of 20. The `paper` profile uses TIGER's model size, the paper's step counts,
  20 items of history and every user.
- **Noise.** Every number is one run (one seed). On a sample of n users a Hits@5 of p
  has a standard error of sqrt(p(1-p)/n): about 0.003 for p = 0.02 and n = 2,000, so a
  "holds" or "does not hold" decided by a smaller margin is within noise.
- **Metrics.** NDCG is NDCG@5 (the paper does not name its cut-off). Table 2's
  "percentage of overlapping predictions" is not defined in the paper; we read it as
  the overlap (Jaccard) of the users two models get right (Hits@5) and also show the
  share of users whose top-1 item agrees.
"""
