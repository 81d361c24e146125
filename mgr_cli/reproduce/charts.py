"""The figures' PNGs, drawn with PIL (no plotting library is a dependency)."""

from __future__ import annotations

from pathlib import Path


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
