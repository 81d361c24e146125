"""Beyond the paper: a third modality, behaviour (collab IDs from SASRec's item table).

    table5-three   SASRec, MGR-LF and MGR-LF++ on text + image, and the same layouts on
                   text + image + collab (mgr-lf3, mgr-lfpp3+align): how much of the gap
                   between the content IDs and SASRec the collaborative ID closes
    table3-three   partial decoding (the paper's Table 3) of mgr-lf3 and mgr-lfpp3+align:
                   each modality, each pair, all three

The collab IDs come from `mgr sasrec train --select last` (collab.run): its weights see
the training part of each sequence only and it reads no validation item
(tests/unit/test_three_modalities.py checks it bit for bit).
"""

from __future__ import annotations

import json
from pathlib import Path

from mgr_cli.errors import MgrError
from mgr_cli.reproduce.report import (_md_table, _with_se, commands, data_lines, encoder_lines,
                                      machine)
from mgr_cli.reproduce.tables import _metrics, _need

THREE_TARGETS = ("table5-three", "table3-three")
ROWS3 = [("sasrec", "SASRec (collab alone)"), ("mgr-lf", "MGR-LF (text + image)"),
         ("mgr-lfpp+align", "MGR-LF++ (text + image)"), ("mgr-lf3", "MGR-LF (text + image + collab)"),
         ("mgr-lfpp3+align", "MGR-LF++ (text + image + collab)")]
PAIRS3 = [("mgr-lf3", "mgr-lf"), ("mgr-lfpp3+align", "mgr-lfpp+align")]  # 3 modalities vs 2
SUBSETS = ["text", "image", "collab", "text+image", "text+collab", "image+collab"]
PARTIAL_ROWS = ["mgr-lf3", "mgr-lfpp3+align"]
KEYS = ("mrr", "ndcg@5", "hits@5")


def _row(m: dict) -> dict:
    return {"users": m["users"], **{k: m[k] for k in KEYS},
            **{f"{k}_se": m[f"{k}_se"] for k in KEYS if f"{k}_se" in m}}


def table5_three(build: Path, sets: list[str]) -> dict:
    out = {}
    for ds in sets:
        rows = {}
        for stem, _ in ROWS3:
            path = build / ds / f"{stem}.eval" / "metrics.jsonl"
            rows[stem] = _row(_need(_metrics(path), path))
        gap = {}
        for three, two in PAIRS3:  # the share of the gap to SASRec that the collab ID closes
            g = {}
            for k in KEYS:
                to_close = rows["sasrec"][k] - rows[two][k]
                g[k] = round((rows[three][k] - rows[two][k]) / to_close, 4) if to_close > 0 else None
            gap[three] = g
        out[ds] = {"rows": rows, "gap_closed": gap}
    return out


def table3_three(build: Path, sets: list[str]) -> dict:
    out = {}
    for ds in sets:
        out[ds] = {}
        for row in PARTIAL_ROWS:
            cells = {}
            for s in SUBSETS + ["all"]:
                path = build / ds / (f"{row}.eval" if s == "all" else f"{row}.eval-{s}") / "metrics.jsonl"
                cells[s] = _row(_need(_metrics(path), path))
            out[ds][row] = cells
    return out


def findings3(target: str, data: dict) -> dict:
    out = {}
    for ds, d in data.items():
        if target == "table5-three":
            r = d["rows"]
            out[ds] = {f"{three} above {two} (NDCG@5)": r[three]["ndcg@5"] > r[two]["ndcg@5"]
                       for three, two in PAIRS3}
        else:
            f = {}
            for row, cells in d.items():
                best = max(cells, key=lambda s: cells[s]["hits@5"])
                f[f"{row}: the full ID decodes best (Hits@5; best: {best})"] = best == "all"
            out[ds] = f
    return out


def _artifacts(build: Path, ds: str, target: str) -> list[Path]:
    d = build / ds
    if target == "table5-three":
        names = [f"{s}.eval/metrics.jsonl" for s, _ in ROWS3]
    else:
        names = [f"{r}.eval-{s}/metrics.jsonl" for r in PARTIAL_ROWS for s in SUBSETS]
    return [d / n for n in names if (d / n).exists()]


def render3(target: str, data: dict, build: Path, sets: list[str], profile: str, budget: str) -> str:
    title = {"table5-three": "Three modalities: text + image + collab IDs in MGR-LF and MGR-LF++",
             "table3-three": "Three modalities: partial decoding (Table 3 style), Hits@5 / NDCG@5"}[target]
    lines = [f"# {title}", "", f"Profile `{profile}`; budget and encoders at the end. The collab "
             "IDs are SASRec's item table (`mgr sasrec train --select last`, then `mgr sasrec embed` "
             "and `mgr quantize`), trained on the training split only: no validation or test item "
             "reaches it (tests/unit/test_three_modalities.py).", ""]
    if target == "table5-three":
        for ds, d in data.items():
            lines += [f"## {ds}", ""]
            lines += _md_table(["method", "MRR", "NDCG@5", "Hits@5", "users"],
                               [[label, *[_with_se(d["rows"][s], k) for k in KEYS], d["rows"][s]["users"]]
                                for s, label in ROWS3]) + [""]
            lines += ["Share of the gap to SASRec closed by adding the collab ID "
                      "((3 modalities - 2) / (SASRec - 2); '-' where SASRec is not ahead):", ""]
            lines += _md_table(["rows", *KEYS], [[f"{three} vs {two}", *[d["gap_closed"][three][k] for k in KEYS]]
                                                 for three, two in PAIRS3]) + [""]
    else:
        cols = SUBSETS + ["all"]
        for ds, d in data.items():
            lines += [f"## {ds}", ""]
            lines += _md_table(["decoded", *cols],
                               [[row, *[f"{c[s]['hits@5']:.4f} / {c[s]['ndcg@5']:.4f}" for s in cols]]
                                for row, c in d.items()]) + [""]
        lines += ["Each cell: Hits@5 / NDCG@5 when decoding only those modalities' IDs against "
                  "the valid items restricted to them (LF++ keeps the separator before each "
                  "later kept modality).", ""]
    checks = findings3(target, data)
    lines += ["## Findings on our data", ""]
    for ds, f in checks.items():
        lines += [f"- {ds}: {claim}: **{'holds' if ok else 'does not hold'}**" for claim, ok in f.items()]
    lines += ["", "## Data", ""] + data_lines(build, sets)
    lines += ["", "## Encoders", ""] + encoder_lines(build, sets)
    lines += ["", "## Budget", "", f"`PROFILE={profile}`: `{budget}`"]
    lines += ["", "## Machine", "", "```", json.dumps(machine(), indent=1), "```"]
    cmds = [c for ds in sets for c in commands(_artifacts(build, ds, target))]
    lines += ["", "## Commands (from the artifacts' provenance, parents first)", "", "```"]
    lines += list(dict.fromkeys(cmds)) + ["```", ""]
    return "\n".join(lines)


def build_three(target: str, build: Path, sets: list[str], out: Path, profile: str, budget: str) -> dict:
    if target not in THREE_TARGETS:
        raise MgrError(f"unknown target {target!r}; one of {', '.join(THREE_TARGETS)}")
    out.mkdir(parents=True, exist_ok=True)
    data = (table5_three if target == "table5-three" else table3_three)(build, sets)
    record = {"target": target, "profile": profile, "budget": budget, "datasets": sets,
              "results": data, "findings": findings3(target, data), "machine": machine()}
    (out / f"{target}.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / f"{target}.md").write_text(render3(target, data, build, sets, profile, budget))
    return record
