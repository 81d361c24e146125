"""mgr embed: one embedding per item, from its text or its image (`mgr fuse` joins the two).

    mgr embed data.jsonl -o text.safetensors --modality text                  # CLIP ViT-B-32
    mgr embed data.jsonl -o img.safetensors --modality image --clip-pretrained ckpt.bin
    mgr embed data.jsonl -o text.safetensors --modality text --text-model standin:minilm
    mgr embed data.jsonl -o img.safetensors --modality image --image-model standin:efficientnet-lite0
    mgr embed data.jsonl -o bert.safetensors --modality text --text-model ./bert-base --pooling cls
    torchrun --standalone --nproc_per_node=4 -m mgr_cli embed data.jsonl -o img.safetensors --modality image
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mgr_cli.cli.common import (choice, command_line, config_option, handle_errors, log,
                                plugin_option)

MODALITIES = ("text", "image")
POOLINGS = ("mean", "cls")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MISSING_IMAGES = ("error", "blank")


def _not_used(modality: str, text_model: str | None, image_model: str | None) -> set[str]:
    """The options that play no part in this run: provenance records what ran, so an image
    embedding by a stand-in is not "made by" --clip-model ViT-B-32 --clip-pretrained openai."""
    text, image = modality == "text", modality == "image"
    skip: set[str] = set()
    if not ((text and not text_model) or (image and not image_model)):
        skip |= {"clip_model", "clip_pretrained"}
    if not (text and text_model):
        skip |= {"text_model", "pooling"}
    if not image:
        skip |= {"image_model", "image_weights", "workers", "missing_images", "allow_outside_images"}
    elif not image_model:
        skip.add("image_weights")
    return skip


@handle_errors
def embed_cmd(
    ctx: typer.Context,
    dataset: Path = typer.Argument(..., help="Dataset artifact from mgr prepare."),
    out: Path = typer.Option(..., "--out", "-o", help="Embeddings artifact to write (.safetensors)."),
    modality: str = typer.Option("text", callback=choice(MODALITIES),
                                 help="text or image (`mgr fuse` joins the two)."),
    clip_model: str = typer.Option("ViT-B-32", help="open_clip model name (or local-dir:PATH)."),
    clip_pretrained: Optional[str] = typer.Option(
        "openai", help="open_clip pretrained tag or local checkpoint file; 'none' for random init."),
    text_model: Optional[str] = typer.Option(
        None, help="Local transformers directory (or standin:minilm, or FAMILY:SPEC of a --plugin's encoder family) replacing CLIP's text tower."),
    pooling: str = typer.Option("mean", callback=choice(POOLINGS),
                                help="Pooling of --text-model outputs: mean or cls."),
    image_model: Optional[str] = typer.Option(
        None, help="timm model name (or standin:efficientnet-lite0, or FAMILY:SPEC) replacing CLIP's image tower."),
    image_weights: Optional[str] = typer.Option(None, help="Local weights file for --image-model."),
    normalize: bool = typer.Option(True, help="L2-normalise the output vectors."),
    batch_size: int = typer.Option(64, help="Items per forward pass."),
    workers: int = typer.Option(1, help="Image decoding processes."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", callback=choice(PRECISIONS),
                                  help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16."),
    missing_images: str = typer.Option("error", callback=choice(MISSING_IMAGES),
                                       help="Items without a usable image: error or blank."),
    allow_outside_images: bool = typer.Option(
        False, "--allow-outside-images", help="Accept image paths that resolve outside the dataset's image folder."),
    seed: int = typer.Option(0, help="Seed for randomly initialised towers (tests, smoke runs)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    config: Optional[Path] = config_option(),
    plugin: Optional[List[Path]] = plugin_option(),
) -> None:
    """Embed every item's text or image with CLIP or a local encoder."""
    from mgr_cli.artifacts import read_header
    from mgr_cli.cli.progress import progress_bar
    from mgr_cli.encoders.embed import EmbedConfig, embed

    cfg = EmbedConfig(modality=modality, clip_model=clip_model,
                      clip_pretrained=None if (clip_pretrained or "none").lower() == "none" else clip_pretrained,
                      text_model=text_model, pooling=pooling, image_model=image_model,
                      image_weights=image_weights, normalize=normalize,
                      batch_size=batch_size, workers=workers, device=device, precision=precision,
                      missing_images=missing_images, outside_images=allow_outside_images, seed=seed)
    n = read_header(dataset, "dataset")["meta"]["stats"]["items"]
    with progress_bar(n, f"embed {modality}") as advance:
        header = embed(dataset, out, cfg, command=command_line(ctx, _not_used(modality, text_model, image_model)),
                       force=force, log=log, progress=advance)
    if header is not None:
        m = header["meta"]
        log(f"wrote {m['n_items']} x {m['dim']} {m['modality']} embeddings to {out}"
            + (" (stand-in encoders, not CLIP)" if m["standin"] else ""))
