"""Time to quality: TIGER on Amazon 2014 Beauty, from `mgr` commands only.

    .venv/bin/python bench/time_to_quality.py --ids letter            # LETTER's published IDs
    .venv/bin/python bench/time_to_quality.py --ids ours              # stand-in text encoder + RQ-VAE
    .venv/bin/python bench/time_to_quality.py --ids letter --minutes 30 --name letter-30

Stages (each skipped when its output exists, so a finished run is only recorded):
prepare -> [embed -> quantize | ids import] -> tokenize -> train (mgr train's
defaults, at most --minutes of wall time) -> evaluate on ALL test users, and the
most-popular baseline. It prints the learning curve (Recall@5 on the fixed seeded
validation sample against minutes and steps), appends one entry to
results/time_to_quality.json, and prints the test Recall@5 and the training minutes last.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = {"recall@5": 0.042, "ndcg@5": 0.027}
# The CPU recipe measured in results/beauty.md (configs/cpu.toml): a 4+4-layer T5 of width
# 128, 4 heads of 32, d_ff 1024, reading one encoder position per history item
# (--encoder-input items; round 8: Recall@5 0.0350 in the hour on one core), dropout 0,
# bf16 autocast where the CPU has AMX (fp32 elsewhere), lr 3e-3 with warm-up, then linear
# decay to 0 at --minutes (--decay-over minutes), batch 256, validation every 500 steps on
# a fixed sample of 2,000 users. Rounds 1-7 used 2+2 layers, d_ff 512 and token input.
RECIPE = ("--layers 4 --decoder-layers 4 --d-model 128 --heads 4 --d-kv 32 --d-ff 1024 --dropout 0.0 "
          "--encoder-input items --steps 100000 --decay-over minutes --batch-size 256 --lr 3e-3 --warmup 300 "
          "--eval-every 500 --eval-users 2000 --precision auto --device cpu")


def sh(cmd: list[str], log: Path) -> float:
    """Run one mgr stage, its output appended to `log`; returns its wall seconds."""
    print("$ " + shlex.join(cmd), flush=True)
    start = time.perf_counter()
    with open(log, "a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc:
        sys.exit(f"failed ({rc}): {shlex.join(cmd)}; see {log}")
    return time.perf_counter() - start


def meta_of(path: Path) -> dict:
    with open(path) as f:
        return json.loads(f.readline())["mgr_artifact"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", choices=("letter", "ours"), default="letter")
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/amazon2014/Beauty"))
    ap.add_argument("--stages", default="build/beauty", help="dataset, IDs and tokens go here")
    ap.add_argument("--runs", default="build/ttq", help="run and evaluation folders go here")
    ap.add_argument("--name", default=None, help="run folder name (default: the ID source)")
    ap.add_argument("--minutes", type=float, default=60.0, help="mgr train --max-minutes")
    ap.add_argument("--train-args", default=RECIPE, help="mgr train options (quoted; default: the CPU recipe)")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for training (default: all cores)")
    ap.add_argument("--record", default="results/time_to_quality.json")
    ap.add_argument("--commit", default=None, help="the commit whose code ran the stages (default: HEAD)")
    ap.add_argument("--note", default="", help="recorded with the entry (e.g. what else ran on the machine)")
    args = ap.parse_args()
    mgr = [str(Path(sys.executable).parent / "mgr")]
    data, st, runs = Path(args.data), Path(args.stages), Path(args.runs)
    if not (data / "user_sequence.txt").exists():
        sys.exit(f"{data}: no user_sequence.txt; pass --data <Amazon 2014 Beauty folder>")
    st.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    name = args.name or args.ids
    log = runs / f"{name}.log"
    seconds: dict[str, float] = {}
    dataset, tok = st / "dataset.jsonl", st / f"{args.ids}.tok.safetensors"
    ids = st / f"{args.ids}.ids.safetensors"
    if not dataset.exists():
        seconds["prepare"] = sh(mgr + ["prepare", "amazon-p5", str(data), "-o", str(dataset)], log)
    if not ids.exists() and args.ids == "letter":
        seconds["quantize"] = sh(mgr + ["ids", "import", str(data / "letter.index.json"),
                                        "--dataset", str(dataset), "--modality", "text", "-o", str(ids)], log)
    if not ids.exists() and args.ids == "ours":
        emb = st / "text.emb.safetensors"
        if not emb.exists():
            seconds["embed"] = sh(mgr + ["embed", str(dataset), "-o", str(emb), "--modality", "text",
                                         "--text-model", "standin:minilm"], log)
        seconds["quantize"] = sh(mgr + ["quantize", str(emb), "-o", str(ids)], log)
    if not tok.exists():
        seconds["tokenize"] = sh(mgr + ["tokenize", str(dataset), str(ids), "-o", str(tok),
                                        "--layout", "tiger"], log)
    run, ev, pop = runs / name, runs / f"{name}.eval", runs / "popular.eval"
    if not (run / "run.jsonl").exists():
        resume = ["--resume"] if (run / "checkpoint").exists() else []
        if args.threads:
            os.environ["OMP_NUM_THREADS"] = str(args.threads)
        seconds["train"] = sh(mgr + ["train", str(tok), "-o", str(run), *shlex.split(args.train_args),
                                     "--max-minutes", str(args.minutes), *resume], log)
    if not (ev / "metrics.jsonl").exists():
        seconds["evaluate"] = sh(mgr + ["evaluate", str(run), str(tok), "-o", str(ev)], log)
    if not (pop / "metrics.jsonl").exists():
        sh(mgr + ["popular", str(dataset), "-o", str(pop)], log)

    header = meta_of(run / "run.jsonl")
    curve = [json.loads(line) for line in open(run / "run.jsonl")][1:]
    print(f"\nlearning curve ({run}; validation: a fixed seeded sample of "
          f"{header['config']['eval_users']} users)")
    print("| step | epoch | minutes | train loss | Recall@5 | NDCG@10 |\n|---|---|---|---|---|---|")
    for r in curve:
        print(f"| {r['step']} | {r.get('epoch', '')} | {r.get('minutes', '')} | {r['train_loss']:.3f} "
              f"| {r['hits@5']:.4f} | {r['ndcg@10']:.4f} |")
    m = meta_of(ev / "metrics.jsonl")["meta"]
    p = meta_of(pop / "metrics.jsonl")["meta"]["metrics"]
    se = m.get("standard_errors", {})
    entry = {"dataset": "beauty", "ids": args.ids, "device": header["config"]["device"]
             if header["config"]["device"] != "auto" else "cpu",
             "users": m["users"], "recall@5": m["metrics"]["hits@5"], "ndcg@5": m["metrics"]["ndcg@5"],
             "recall@5_se": se.get("hits@5"), "ndcg@5_se": se.get("ndcg@5"),
             "recall@10": m["metrics"]["hits@10"], "ndcg@10": m["metrics"]["ndcg@10"],
             "distinct_top1": m.get("distinct_top1"), "coverage@20": m.get("coverage@20"),
             "popular_recall@5": p["hits@5"],
             "train_minutes": header["meta"].get("train_minutes"), "steps": header["meta"]["steps"],
             "best_step": header["meta"]["best_step"], "stopped": header["meta"].get("stopped"),
             "train_command": header["created_by"]["command"],
             "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
             "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
             "threads": int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)), "note": args.note,
             "date": datetime.date.today().isoformat(),
             "commit": args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                                     capture_output=True, text=True, cwd=REPO).stdout.strip()}
    record = Path(args.record)
    entries = json.loads(record.read_text()) if record.exists() else []
    entries.append(entry)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(entries, indent=1) + "\n")
    print(f"\ntest, all {m['users']} users: Recall@5 {entry['recall@5']:.4f} (se {entry['recall@5_se']}), "
          f"NDCG@5 {entry['ndcg@5']:.4f}; most popular Recall@5 {p['hits@5']:.4f}; "
          f"distinct top-1 items {entry['distinct_top1']}, coverage@20 {entry['coverage@20']}")
    reached = entry["recall@5"] >= TARGET["recall@5"] and entry["ndcg@5"] >= TARGET["ndcg@5"]
    print(f"Beauty TIGER ({args.ids} IDs): Recall@5 {entry['recall@5']:.4f} in "
          f"{entry['train_minutes']} minutes of mgr train ({entry['steps']} steps); target "
          f"{TARGET['recall@5']} / NDCG@5 {TARGET['ndcg@5']}: {'reached' if reached else 'NOT reached'}")


if __name__ == "__main__":
    main()
