"""mgr recommend: a trained run answers requests, histories on stdin, top-K items on stdout.

    echo '{"user": "u1", "history": ["B0001", "B0002"]}' | mgr recommend runs/lfpp lfpp.tok.safetensors
    mgr recommend runs/lfpp lfpp.tok.safetensors -i histories.txt --top-k 5 --exclude-history
    mgr recommend runs/lfpp lfpp.tok.safetensors --batch-size 1      # interactive: one line, one answer
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import choice, handle_errors, log, plugin_option
from mgr_cli.errors import MgrError


class OnUnknown(str, Enum):
    error = "error"
    skip = "skip"


@handle_errors
def recommend_cmd(
    run: Path = typer.Argument(..., help="Run folder from mgr train."),
    tokenized: Path = typer.Argument(..., help="Tokenized artifact the run was trained on."),
    input_file: Optional[Path] = typer.Option(None, "--input", "-i",
                                         help="File of histories (default, or -: stdin)."),
    top_k: int = typer.Option(10, help="Items per user."),
    beams: int = typer.Option(20, help="Beam width (as mgr evaluate)."),
    batch_size: int = typer.Option(64, help="Users decoded together: read this many lines (or to the end), answer, flush. 1 answers each line at once."),
    exclude_history: bool = typer.Option(False, "--exclude-history", help="Leave out the history's own items (the beam width becomes at least top-k + the artifact's max history)."),
    unknown: OnUnknown = typer.Option(OnUnknown.error, help="Item ids not in the catalogue, and histories left empty: error, or skip (drop the ids; answer an empty history from no history)."),
    modalities: Optional[str] = typer.Option(None, help="Decode only these modalities' IDs (comma-separated)."),
    workers: int = typer.Option(0, help="CPU decoding threads (0: one per core, at least 16 users each)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda."),
    precision: str = typer.Option("auto", callback=choice(("auto", "fp32", "bf16")), help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16."),
    plugin: Optional[List[Path]] = plugin_option(),
) -> None:
    """Top-K items for each user history read from stdin, as JSON lines on stdout.

    Input lines: {"user": ..., "history": item ids, oldest first} or item ids separated by spaces.

    Output lines: {"user": ..., "items": ..., "scores": log-probabilities}.
    """
    for option, value in (("--top-k", top_k), ("--beams", beams), ("--batch-size", batch_size)):
        if value < 1:
            raise MgrError(f"{option} must be at least 1, got {value}")
    if workers < 0:
        raise MgrError(f"--workers must be positive (0: one per core), got {workers}")
    if precision not in ("auto", "fp32", "bf16"):
        raise MgrError(f"--precision must be auto, fp32 or bf16, got {precision!r}")
    use_stdin = input_file is None or str(input_file) == "-"
    if not use_stdin and not input_file.is_file():
        raise MgrError(f"{input_file}: no such file")

    from mgr_cli import distributed
    from mgr_cli.decoding.evaluate import load_run_model
    from mgr_cli.decoding.recommend import Counts, Recommender, read_requests
    from mgr_cli.models.t5 import quiet_transformers
    from mgr_cli.tokens.stage import Tokenized

    quiet_transformers()
    tok = Tokenized.load(tokenized)
    dev = distributed.pick_device(device, distributed.from_env())
    precision = ("bf16" if dev.type == "cuda" else "fp32") if precision == "auto" else precision
    model, _ = load_run_model(run, tok, dev, precision, verb="recommend")
    mods = [m.strip() for m in modalities.split(",")] if modalities else None
    rec = Recommender(model, tok, modalities=mods, device=dev, workers=workers or None)
    counts = Counts()
    stream = sys.stdin.buffer if use_stdin else open(input_file, "rb")
    if use_stdin and sys.stdin.isatty():
        log("reading histories from the terminal, one user a line (end with Ctrl-D)")
    try:
        answers = rec.recommend(read_requests(stream), k=top_k, beams=beams, batch_size=batch_size,
                                exclude_history=exclude_history, unknown=unknown.value, counts=counts)
        width = rec.beam_width(top_k, beams, exclude_history)
        if width > beams:
            log(f"--exclude-history: {width} beams (top-k {top_k} + max history {rec.max_history})")
        out = sys.stdout
        for a in answers:
            out.write(json.dumps({"user": a["user"], "items": a["items"],
                                  "scores": [round(s, 5) for s in a["scores"]]}) + "\n")
            out.flush()  # a line is answered as soon as it is decoded (see --batch-size)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        _silence_stdout()
        return
    except KeyboardInterrupt:
        sys.stderr.write(f"Error: interrupted; {counts.users} users were answered\n")
        raise typer.Exit(130) from None
    finally:
        if not use_stdin:
            stream.close()
    _summary(counts, top_k)


def _summary(counts, k: int) -> None:
    parts = [f"{counts.users} users answered"]
    if counts.unknown_ids:
        shown = ", ".join(repr(x) for x in counts.examples)
        parts.append(f"{counts.unknown_ids} unknown item ids skipped in {counts.unknown_users} "
                     f"histories (e.g. {shown})")
    if counts.empty:
        parts.append(f"{counts.empty} empty histories answered from no history")
    if counts.short:
        parts.append(f"{counts.short} users got fewer than {k} items")
    for part in parts:
        log(part)


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the exit's flush stays quiet."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a captured stdout has no descriptor
        pass
