"""Results of the paper's tables and figures from the artifacts the Makefile builds.

    python -m mgr_cli.reproduce table5 --build build/paper/small --profile small \
        --sets "hm movielens" --out results

Each target reads the artifacts of every dataset folder it is given (fixed names, see
`ROWS` and the Makefile), and writes `OUT/<target>.md` (the table next to the paper's,
the findings checked, the data, the machine, the budget and the exact commands, taken
from the artifacts' own provenance) and `OUT/<target>.json`; figures also a PNG.
`reproduction` gathers the JSON files into REPRODUCTION.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from mgr_cli.artifacts import read_header, read_jsonl
from mgr_cli.artifacts.lineage import lineage
from mgr_cli.errors import MgrError

# The paper's numbers (Tables 1, 2, 3, 5; Amazon Toys / Beauty / Sports, CLIP encoders).
PAPER_TABLE1 = {"Toys": [0.2765, 0.3892, 0.4829], "Beauty": [0.2920, 0.3937, 0.5539],
                "Sports": [0.3976, 0.5105, 0.6351]}
PAPER_TABLE2 = {"Toys": [0.3287, 0.3881, 0.4612], "Beauty": [0.4724, 0.4911, 0.4866],
                "Sports": [0.2775, 0.3675, 0.4584]}
PAPER_TABLE3 = {"Toys": [0.0598, 0.0495, 0.0482], "Beauty": [0.0505, 0.0417, 0.0336],
                "Sports": [0.0195, 0.0193, 0.0184]}
PAPER_TABLE5 = {  # row: {domain: (MRR, NDCG, Hits@5)}
    "letter": {"Toys": (0.0169, 0.0201, 0.0300), "Beauty": (0.0048, 0.0059, 0.0092), "Sports": (0.0018, 0.0023, 0.0036)},
    "hc": {"Toys": (0.0071, 0.0088, 0.0138), "Beauty": (0.0074, 0.0090, 0.0138), "Sports": (0.0029, 0.0036, 0.0055)},
    "sasrec": {"Toys": (0.0047, 0.0056, 0.0084), "Beauty": (0.0084, 0.0105, 0.0167), "Sports": (0.0036, 0.0042, 0.0059)},
    "tiger-textlm": {"Toys": (0.0173, 0.0212, 0.0331), "Beauty": (0.0077, 0.0101, 0.0173), "Sports": (0.0050, 0.0062, 0.0098)},
    "tiger-text": {"Toys": (0.0217, 0.0275, 0.0451), "Beauty": (0.0161, 0.0199, 0.0316), "Sports": (0.0103, 0.0127, 0.0203)},
    "tiger-image": {"Toys": (0.0198, 0.0245, 0.0389), "Beauty": (0.0143, 0.0177, 0.0283), "Sports": (0.0062, 0.0077, 0.0121)},
    "mgr-ef": {"Toys": (0.0231, 0.0294, 0.0486), "Beauty": (0.0150, 0.0187, 0.0298), "Sports": (0.0086, 0.0105, 0.0163)},
    "mgr-lf": {"Toys": (0.0220, 0.0284, 0.0482), "Beauty": (0.0169, 0.0210, 0.0336), "Sports": (0.0091, 0.0114, 0.0184)},
    "mgr-lfpp+align": {"Toys": (0.0280, 0.0349, 0.0562), "Beauty": (0.0176, 0.0216, 0.0334), "Sports": (0.0102, 0.0130, 0.0206)},
}
# Table 5's rows: (evaluation folder stem, label). The Makefile builds <set>/<stem>.eval/.
ROWS = [("sasrec", "SASRec"), ("tiger-textlm", "TIGER (text LM)"), ("tiger-text", "TIGER (text)"),
        ("tiger-image", "TIGER (image)"), ("letter", "LETTER"), ("hc", "HC-indexer"),
        ("mgr-ef", "MGR-EF"), ("mgr-lf", "MGR-LF"), ("mgr-lfpp+align", "MGR-LF++")]
ABLATION = [("mgr-lf", "neither"), ("mgr-lfpp", "special tokens only"),
            ("mgr-lf+align", "alignment only"), ("mgr-lfpp+align", "both (MGR-LF++)")]
SETS = {"hm": "H&M (product photos + text)", "movielens": "MovieLens-100K (posters + plots)",
        "instruments": "Amazon 2018 Instruments (MQL4GRec's image- and text-derived IDs)",
        "beauty": "Amazon 2014 Beauty (text only)", "demo": "generated demo catalogue"}
TARGETS = ("table1", "table2", "table3", "table5", "fig4", "fig5", "fig6")


def _metrics(path: Path) -> dict | None:
    if not path.exists():
        return None
    h, _ = read_jsonl(path, "metrics")
    return {"users": h["meta"]["users"], **h["meta"]["metrics"]}


def _eval(build: Path, ds: str, stem: str) -> dict | None:
    return _metrics(build / ds / f"{stem}.eval" / "metrics.jsonl")


def _need(value, what: Path):
    if value is None:
        raise MgrError(f"{what} is missing: build it with make (the stage targets make it)")
    return value


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _md_table(head: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]


# ---------------------------------------------------------------- the targets

def table1(build: Path, sets: list[str]) -> dict:
    out = {}
    for ds in sets:
        path = build / ds / "table1.json"
        data = json.loads(_need(path.read_text() if path.exists() else None, path))
        out[ds] = {r["pair"]: round(r["ami"], 4) for r in data["rows"]}
    return out


def hit_overlap(a: Path, b: Path, k: int = 5) -> float:
    """Jaccard overlap of the users two models get right in their top k: of the examples
    either model predicts correctly, the share both do."""
    hits = []
    for path in (a, b):
        _, rows = read_jsonl(path, "predictions")
        hits.append({r["user"] for r in rows if r["rank"] is not None and r["rank"] <= k})
    union = hits[0] | hits[1]
    return round(len(hits[0] & hits[1]) / len(union), 6) if union else 0.0


def table2(build: Path, sets: list[str]) -> dict:
    """Per pair of input modalities: the Jaccard overlap of the users each model gets
    right (Hits@5), the paper's "identical prediction results", and the share of users
    whose top-1 item agrees."""
    from mgr_cli.decoding.evaluate import overlap

    out = {}
    for ds in sets:
        p = {m: build / ds / f"{s}.eval" / "predictions.jsonl"
             for m, s in (("image", "tiger-image"), ("text", "tiger-text"), ("fused", "mgr-ef"))}
        for path in p.values():
            _need(path if path.exists() else None, path)
        pairs = (("Img vs. Txt", "image", "text"), ("Img vs. Multimodal", "image", "fused"),
                 ("Txt vs. Multimodal", "text", "fused"))
        out[ds] = {name: hit_overlap(p[a], p[b]) for name, a, b in pairs}
        out[ds]["top-1 agreement"] = {name: overlap(p[a], p[b])["top1_agreement"] for name, a, b in pairs}
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
                              "users": m["users"]}
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


# ---------------------------------------------------------------- context

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
            for stem, label in ROWS:
                if stem in rows:
                    r = rows[stem]
                    pb = PAPER_TABLE5[stem]["Beauty"]
                    body.append([label, r["mrr"], r["ndcg@5"], r["hits@5"], r["users"],
                                 f"{pb[0]:.4f} / {pb[1]:.4f} / {pb[2]:.4f}"])
            lines += _md_table(["method", "MRR", "NDCG@5", "Hits@5", "users",
                                "paper, Beauty (MRR / NDCG / Hits@5)"], body) + [""]
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


def bar_chart(groups: dict[str, dict[str, float]], title: str, path: Path, metric: str) -> None:
    """Grouped bars with PIL (one group per dataset, one bar per variant)."""
    from PIL import Image, ImageDraw

    colours = [(70, 110, 200), (230, 140, 40), (90, 170, 90), (200, 60, 60), (140, 100, 180),
               (120, 120, 120)]
    shared = len({tuple(g) for g in groups.values()}) == 1  # one legend, else a label per bar
    names = list(next(iter(groups.values())).keys()) if shared and groups else []
    w_bar, gap, h = 40, 40, 260
    width = max(420, sum(len(g) * w_bar + gap for g in groups.values()) + 80)
    img = Image.new("RGB", (width, h + 60 + 18 * len(names)), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 8), f"{title} ({metric})", fill="black")
    top = max([v for g in groups.values() for v in g.values()] + [1e-9])
    x = 50
    for ds, vals in groups.items():
        for i, (name, v) in enumerate(vals.items()):
            bh = int((h - 60) * v / top)
            base = 30 + h - 60
            d.rectangle([x + i * w_bar, base - bh, x + (i + 1) * w_bar - 6, base],
                        fill=colours[i % len(colours)])
            d.text((x + i * w_bar, base - 12 - bh), f"{v:.3f}", fill="black")
            if not shared:
                d.text((x + i * w_bar, base + 4), name, fill="black")
        d.text((x, 30 + h - 36), ds, fill="black")
        x += len(vals) * w_bar + gap
    for i, name in enumerate(names):
        y = h + 20 + 18 * i
        d.rectangle([10, y, 22, y + 12], fill=colours[i % len(colours)])
        d.text((28, y), name, fill="black")
    img.save(path)


def stack_images(paths: list[tuple[str, Path]], out: Path) -> None:
    from PIL import Image, ImageDraw

    imgs = [(name, Image.open(p).convert("RGB")) for name, p in paths]
    width = max(im.width for _, im in imgs)
    canvas = Image.new("RGB", (width, sum(im.height + 24 for _, im in imgs)), "white")
    y = 0
    draw = ImageDraw.Draw(canvas)
    for name, im in imgs:
        draw.text((6, y + 6), name, fill="black")
        canvas.paste(im, (0, y + 24))
        y += im.height + 24
    canvas.save(out)


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
        data = fig6(build, sets, levels, sizes, main_levels, main_size)
    else:
        data = {"table1": table1, "table2": table2, "table3": table3, "table5": table5,
                "fig5": fig5}[target](build, sets)
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
  dataset) so that each dataset finishes in well under an hour on 2 CPU cores. The
  `paper` profile uses TIGER's model size, the paper's step counts and every user.
- **Noise.** Every number is one run (one seed). On a sample of n users a Hits@5 of p
  has a standard error of sqrt(p(1-p)/n): about 0.003 for p = 0.02 and n = 2,000, so a
  "holds" or "does not hold" decided by a smaller margin is within noise.
- **Metrics.** NDCG is NDCG@5 (the paper does not name its cut-off). Table 2's
  "percentage of overlapping predictions" is not defined in the paper; we read it as
  the overlap (Jaccard) of the users two models get right (Hits@5) and also show the
  share of users whose top-1 item agrees.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mgr_cli.reproduce", description=__doc__.split("\n")[0])
    ap.add_argument("target", choices=[*TARGETS, "reproduction"])
    ap.add_argument("--build", type=Path, default=Path("build/paper/small"))
    ap.add_argument("--sets", default="", help="space-separated dataset folders under --build")
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--profile", default="small")
    ap.add_argument("--budget", default="")
    ap.add_argument("--levels", default="", help="fig6: ID lengths swept")
    ap.add_argument("--sizes", default="", help="fig6: codebook sizes swept")
    ap.add_argument("--main-levels", type=int, default=3)
    ap.add_argument("--main-size", type=int, default=256)
    ap.add_argument("--reproduction", type=Path, default=Path("REPRODUCTION.md"))
    a = ap.parse_args(argv)
    try:
        if a.target == "reproduction":
            reproduction(a.out, a.reproduction)
            print(f"wrote {a.reproduction}", file=sys.stderr)
            return 0
        sets = a.sets.split()
        if not sets:
            raise MgrError("--sets names no dataset")
        build_target(a.target, a.build, sets, a.out, a.profile, a.budget,
                     [int(v) for v in a.levels.split()], [int(v) for v in a.sizes.split()],
                     a.main_levels, a.main_size)
        print(f"wrote {a.out / (a.target + '.md')}", file=sys.stderr)
    except (MgrError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
