"""mgr quantize: embeddings in, semantic IDs out (IDs made elsewhere: `mgr ids import`).

    mgr quantize text.safetensors -o text.ids.safetensors                       # RQ-VAE 3 x 256
    mgr quantize img.safetensors -o img.ids.safetensors --levels 4 --codebook-size 128
    mgr quantize text.safetensors -o text.rk.safetensors --method rkmeans       # no training
    mgr quantize text.safetensors -o text.hc.safetensors --method hierarchical  # HC-indexer
    mgr quantize text.safetensors -o letter.safetensors --method letter --collab sasrec.emb.safetensors
    mgr quantize text.safetensors -o signs.safetensors --plugin examples/plugin_quantizer.py --method rp-signs
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import (choice, command_line, config_option, console, handle_errors, log,
                                plugin_option)
from mgr_cli.errors import MgrError
from mgr_cli.quantize.methods import METHODS


@handle_errors
def quantize_cmd(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Embeddings artifact."),
    out: Path = typer.Option(..., "--out", "-o", help="Semantic-ID artifact to write (.safetensors); a .ids.jsonl view goes beside it."),
    method: str = typer.Option("rqvae", callback=choice(METHODS), help=f"{METHODS.describe()}; or a --plugin's."),
    levels: int = typer.Option(3, help="Code levels (before the uniqueness level)."),
    codebook_size: int = typer.Option(256, help="Codes per level."),
    latent_dim: int = typer.Option(32, help="RQ-VAE latent size."),
    hidden: str = typer.Option("512,256,128", help="RQ-VAE encoder hidden sizes."),
    epochs: int = typer.Option(500, help="RQ-VAE maximum epochs (stops earlier on convergence)."),
    patience: int = typer.Option(15, help="Epochs without improvement before stopping."),
    lr: float = typer.Option(1e-3, help="RQ-VAE learning rate."),
    batch_size: int = typer.Option(0, help="RQ-VAE batch size (0: n_items/16 within 128..1024)."),
    dedup: str = typer.Option("always", callback=choice(("always", "auto", "never")), help="Append a level making IDs unique: always, auto (only on collisions), never."),
    seed: int = typer.Option(0, help="Random seed."),
    collab: Optional[Path] = typer.Option(None, help="LETTER: collaborative item embeddings (an embeddings artifact, e.g. from `mgr sasrec embed`)."),
    alpha: float = typer.Option(0.02, help="LETTER: weight of the collaborative contrastive loss."),
    gamma: float = typer.Option(1e-4, help="LETTER: weight of the diversity loss (LETTER's beta)."),
    clusters: int = typer.Option(10, help="LETTER: groups of codes per level for the diversity loss."),
    dataset: Optional[Path] = typer.Option(None, help="Dataset (default: the one the embeddings name)."),
    json_out: bool = typer.Option(False, "--json", help="Print the ID statistics as JSON on stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    config: Optional[Path] = config_option(),
    plugin: Optional[List[Path]] = plugin_option(),
) -> None:
    """Turn embeddings into semantic IDs (RQ-VAE, LETTER, residual or hierarchical k-means)."""
    from mgr_cli.quantize.stage import QuantizeConfig, quantize

    try:
        dims = [int(h) for h in hidden.split(",") if h.strip()]
    except ValueError:
        raise MgrError(f"--hidden must be comma-separated integers, got {hidden!r}") from None
    cfg = QuantizeConfig(method=method, levels=levels, codebook_size=codebook_size,
                         latent_dim=latent_dim, hidden=dims, lr=lr, batch_size=batch_size,
                         max_epochs=epochs, patience=patience, dedup=dedup, seed=seed,
                         alpha=alpha, gamma=gamma, clusters=clusters)
    header = quantize(source, out, cfg, dataset=dataset, collab=collab,
                      command=command_line(ctx), force=force, log=log)
    show(header, out)
    if json_out:
        print(json.dumps({"path": str(out), **header["meta"]}))


def show(header: dict, out: Path) -> None:
    from rich.table import Table

    meta = header["meta"]
    t = Table(title=f"{meta['modality']} semantic IDs ({meta['method']}) -> {out}")
    for col in ("level", "codebook", "used", "usage", "entropy (bits)", "entropy / max"):
        t.add_column(col, justify="right")
    for s in meta["level_stats"]:
        t.add_row(str(s["level"]), str(s["codebook_size"]), str(s["used"]), f"{s['usage']:.3f}",
                  f"{s['entropy_bits']:.2f}", f"{s['entropy_ratio']:.3f}")
    c = console()
    c.print(t)
    c.print(f"collision rate {meta['collision_rate_before']:.4f} before, "
            f"{meta['collision_rate_after']:.4f} after (uniqueness level: {meta['dedup_level']})")
    tr = meta.get("training")
    if tr and "recon_relative_error" in tr:
        c.print(f"reconstruction: relative error {tr['recon_relative_error']:.4f}, MSE "
                f"(standardised) {tr['recon_mse_standardised']:.4f}"
                + (f"; {tr['epochs']} epochs in {header['created_by'].get('training_seconds')} s, "
                   f"converged: {tr['converged']}"
                   if "epochs" in tr else ""))
