"""The paper's Figure 4: for a pivot item, the items that share its first text ID and
those that share its first image ID, as a contact sheet with titles under the images."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from mgr_cli.data import Dataset
from mgr_cli.errors import MgrError

TILE, CAPTION, PAD = 128, 34, 6


def _tile(ds: Dataset, idx: int, pivot: bool):
    from PIL import Image, ImageDraw, ImageFont

    tile = Image.new("RGB", (TILE, TILE + CAPTION), "white")
    try:
        path = ds.image_path(idx)
    except MgrError:  # outside the image folder: drawn blank, never opened
        path = None
    if path is not None and path.exists():
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = min(TILE / im.width, TILE / im.height)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
            tile.paste(im, ((TILE - im.width) // 2, (TILE - im.height) // 2))
    d = ImageDraw.Draw(tile)
    font = ImageFont.load_default()
    lines = textwrap.wrap(" ".join(ds.items[idx].text.split()), width=22)[:2] or [""]
    for k, line in enumerate(lines):
        d.text((3, TILE + 3 + 14 * k), line, fill="black", font=font)
    if pivot:
        d.rectangle([0, 0, TILE - 1, TILE + CAPTION - 1], outline=(220, 30, 30), width=3)
    return tile


def members(first: np.ndarray, pivot: int, n: int) -> list[int]:
    """The pivot, then up to n-1 other items with its first code, in item order."""
    same = [int(i) for i in np.where(first == first[pivot])[0] if i != pivot]
    return [pivot] + same[: n - 1]


def contact_sheet(ds: Dataset, text_codes: np.ndarray, image_codes: np.ndarray, pivot: int,
                  out: Path, per_row: int = 8) -> dict:
    from PIL import Image, ImageDraw, ImageFont

    if not 0 <= pivot < len(ds.items):
        raise MgrError(f"pivot index {pivot} is outside the dataset's {len(ds.items)} items")
    rows = {"text": members(text_codes[:, 0], pivot, per_row),
            "image": members(image_codes[:, 0], pivot, per_row)}
    label_w = 150
    width = label_w + per_row * (TILE + PAD)
    height = 2 * (TILE + CAPTION + PAD) + PAD
    sheet = Image.new("RGB", (width, height), (245, 245, 245))
    d = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, (modality, items) in enumerate(rows.items()):
        y = PAD + r * (TILE + CAPTION + PAD)
        code = (text_codes if modality == "text" else image_codes)[pivot, 0]
        d.text((6, y + TILE // 2 - 14), f"({'ab'[r]}) same first\n{modality} ID <{code}>",
               fill="black", font=font)
        for k, idx in enumerate(items):
            sheet.paste(_tile(ds, idx, idx == pivot), (label_w + k * (TILE + PAD), y))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp.png"
    sheet.save(tmp)
    tmp.replace(out)
    return {"pivot": ds.items[pivot].id, "text_group": [ds.items[i].id for i in rows["text"]],
            "image_group": [ds.items[i].id for i in rows["image"]]}
