"""mgr fuse: early fusion of a text and an image embeddings artifact, encoding nothing again.

    mgr fuse text.safetensors img.safetensors -o fused.safetensors                  # auto
    mgr fuse text.safetensors img.safetensors -o fused.safetensors --fusion concat
    mgr fuse text.safetensors img.safetensors -o fused.safetensors --fusion balanced --text-share 0.7
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mgr_cli.cli.common import choice, command_line, config_option, handle_errors, log

FUSIONS = ("auto", "mean", "concat", "balanced")


@handle_errors
def fuse_cmd(
    ctx: typer.Context,
    text: Path = typer.Argument(..., metavar="TEXT_EMB", help="Text embeddings artifact (mgr embed --modality text)."),
    image: Path = typer.Argument(..., metavar="IMAGE_EMB", help="Image embeddings artifact of the same dataset."),
    out: Path = typer.Option(..., "--out", "-o", help="Fused embeddings artifact to write (.safetensors)."),
    fusion: str = typer.Option("auto", callback=choice(FUSIONS), help="mean (one CLIP's shared space), concat of the normalised vectors, balanced (each modality PCA-reduced to one width and scaled to its share of the variance), or auto (mean for one CLIP model, else concat)."),
    text_share: float = typer.Option(0.5, help="--fusion balanced: the text's share of the fused variance (the image has the rest)."),
    fusion_dim: int = typer.Option(128, help="--fusion balanced: dimensions kept per modality (PCA)."),
    normalize: bool = typer.Option(True, help="L2-normalise the fused vectors (not with --fusion balanced)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    config: Optional[Path] = config_option(),
) -> None:
    """Join a text and an image embedding of every item into one (MGR-EF's input)."""
    from mgr_cli.encoders.embed import fuse_artifacts

    skip = set() if fusion == "balanced" else {"text_share", "fusion_dim"}
    header = fuse_artifacts(text, image, out, fusion=fusion, normalize=normalize,
                            text_share=text_share, fusion_dim=fusion_dim,
                            command=command_line(ctx, skip), force=force)
    m = header["meta"]
    log(f"wrote {m['n_items']} x {m['dim']} fused embeddings ({m['fusion']}) to {out}")
