"""The demo catalogue: generated here, deterministically, with no download.

Each item has attributes that only its IMAGE shows (shape, colour, pattern) and
attributes that only its TEXT says (category, material, use). Simulated users choose
their next item by both: the next category follows the previous item's category
(a text-side transition), the next shape follows the previous item's shape (an
image-side transition), and each user keeps a favourite colour, pattern and material.
So neither modality alone explains the sequences, which is the setting where
multimodal semantic IDs should beat unimodal ones.

Written in the generic format (`interactions.csv`, `items.csv`, `images/*.png`), so
`mgr prepare generic DIR` reads it like any user's own data.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mgr_cli.errors import MgrError

SHAPES = ["circle", "square", "triangle", "diamond", "star", "ring"]
COLOURS = {"red": (200, 40, 40), "orange": (235, 140, 30), "yellow": (230, 205, 40),
           "green": (50, 160, 70), "teal": (30, 150, 150), "blue": (40, 80, 200),
           "purple": (130, 60, 170), "black": (30, 30, 30)}
PATTERNS = ["plain", "stripes", "dots", "checks"]
CATEGORIES = ["mug", "lamp", "vase", "backpack", "cushion", "notebook", "clock", "bowl",
              "scarf", "speaker"]
MATERIALS = ["ceramic", "wool", "steel", "glass", "oak", "linen"]
USES = ["kitchen", "office", "garden", "travel", "bedroom"]
TRUTH = "truth.json"  # the simulation's hidden state: what the oracle knows
ADJECTIVES = ["handmade", "durable", "lightweight", "classic", "compact", "elegant", "sturdy",
              "minimalist"]


@dataclass
class DemoConfig:
    n_items: int = 3000
    n_users: int = 3000
    mean_length: float = 10.0
    image_size: int = 64
    seed: int = 0


def _attributes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {"shape": rng.integers(len(SHAPES), size=n), "colour": rng.integers(len(COLOURS), size=n),
            "pattern": rng.integers(len(PATTERNS), size=n),
            "category": rng.integers(len(CATEGORIES), size=n),
            "material": rng.integers(len(MATERIALS), size=n), "use": rng.integers(len(USES), size=n),
            "adjective": rng.integers(len(ADJECTIVES), size=n), "quality": rng.normal(0, 0.5, n)}


def item_text(a: dict[str, np.ndarray], i: int) -> str:
    cat, mat, use = CATEGORIES[a["category"][i]], MATERIALS[a["material"][i]], USES[a["use"][i]]
    adj = ADJECTIVES[a["adjective"][i]]
    article = "An" if adj[0] in "aeiou" else "A"
    return f"{mat.capitalize()} {cat} for the {use}. {article} {adj} {cat} made of {mat}, for {use} use."


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        pts = [(-90, 1.0), (30, 1.0), (150, 1.0)]
    elif shape == "diamond":
        pts = [(-90, 1.0), (0, 0.75), (90, 1.0), (180, 0.75)]
    elif shape == "star":
        pts = [(-90 + 36 * k, 1.0 if k % 2 == 0 else 0.45) for k in range(10)]
    else:
        raise ValueError(shape)
    return [(cx + s * r * math.cos(math.radians(d)), cy + s * r * math.sin(math.radians(d)))
            for d, s in pts]


def draw_item(a: dict[str, np.ndarray], i: int, size: int, rng: np.random.Generator):
    """A PIL image of item i: its shape, filled with its colour in its pattern."""
    from PIL import Image, ImageDraw

    shape, pattern = SHAPES[a["shape"][i]], PATTERNS[a["pattern"][i]]
    colour = list(COLOURS.values())[a["colour"][i]]
    bg = tuple(int(v) for v in rng.integers(225, 250, size=3))
    cx, cy = size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3)
    r = size * rng.uniform(0.32, 0.42)
    fill = Image.new("RGB", (size, size), colour)
    d = ImageDraw.Draw(fill)
    step = max(size // 8, 4)
    if pattern == "stripes":
        for k in range(-size, size, step):
            d.line([(k, 0), (k + size, size)], fill=(255, 255, 255), width=max(step // 3, 1))
    elif pattern == "dots":
        for x in range(step // 2, size, step):
            for y in range(step // 2, size, step):
                d.ellipse([x - step / 5, y - step / 5, x + step / 5, y + step / 5], fill=(255, 255, 255))
    elif pattern == "checks":
        for x in range(0, size, step):
            for y in range(0, size, step):
                if (x // step + y // step) % 2:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=(255, 255, 255))
    mask = Image.new("L", (size, size), 0)
    m = ImageDraw.Draw(mask)
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        m.ellipse(box, fill=255)
    elif shape == "square":
        m.rectangle([cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r], fill=255)
    elif shape == "ring":
        m.ellipse(box, outline=255, width=max(size // 7, 2))
    else:
        m.polygon(_shape_polygon(shape, cx, cy, r), fill=255)
    return Image.composite(fill, Image.new("RGB", (size, size), bg), mask)


# The simulation's rules, shared by the simulation and the oracle (`oracle_probabilities`)
WEIGHTS = {"colour": 1.5, "pattern": 0.5, "material": 1.2, "category": 2.0, "shape": 2.0}
TEMPERATURE = 3.0  # choice probabilities are softmax(TEMPERATURE * score)
FOLLOW = 0.7  # the chance that the next category (shape) follows the previous item's


def _base_scores(a: dict[str, np.ndarray], colour: int, pattern: int, material: int) -> np.ndarray:
    """A user's standing preference for every item: its favourite colour, pattern and
    material, and the item's own quality."""
    return (WEIGHTS["colour"] * (a["colour"] == colour) + WEIGHTS["pattern"] * (a["pattern"] == pattern)
            + WEIGHTS["material"] * (a["material"] == material) + a["quality"])


def _simulate(rng: np.random.Generator, a: dict[str, np.ndarray],
              cfg: DemoConfig) -> tuple[list[list[int]], dict]:
    """The users' sequences, and the hidden state that produced them (the oracle's)."""
    n_cat, n_shape = len(CATEGORIES), len(SHAPES)
    next_cat = rng.permutation(n_cat)
    next_shape = rng.permutation(n_shape)
    seqs, prefs = [], []
    for _ in range(cfg.n_users):
        colour, pattern = rng.integers(len(COLOURS)), rng.integers(len(PATTERNS))
        material = rng.integers(len(MATERIALS))
        prefs.append([int(colour), int(pattern), int(material)])
        base = _base_scores(a, colour, pattern, material)
        length = 5 + rng.poisson(max(cfg.mean_length - 5, 0))
        cat, shape = rng.integers(n_cat), rng.integers(n_shape)
        seq: list[int] = []
        for _ in range(length):
            score = base + WEIGHTS["category"] * (a["category"] == cat) + WEIGHTS["shape"] * (a["shape"] == shape)
            score[seq] = -np.inf
            p = np.exp(TEMPERATURE * (score - score.max()))
            item = int(rng.choice(len(p), p=p / p.sum()))
            seq.append(item)
            cat = next_cat[a["category"][item]] if rng.random() < FOLLOW else rng.integers(n_cat)
            shape = next_shape[a["shape"][item]] if rng.random() < FOLLOW else rng.integers(n_shape)
        seqs.append(seq)
    truth = {"next_category": next_cat.tolist(), "next_shape": next_shape.tolist(),
             "user_preferences": prefs,
             "items": {k: a[k].tolist() for k in ("category", "shape", "colour", "pattern", "material", "quality")}}
    return seqs, truth


def oracle_probabilities(truth: dict, user: int, history: list[int]) -> np.ndarray:
    """The simulation's exact distribution of a user's next item given their history
    (item indices of the catalogue, in order): it knows the transition tables, the
    user's hidden preferences and that nobody buys an item twice. The ceiling of the
    demo: no recommender can beat it on average."""
    a = {k: np.asarray(v) for k, v in truth["items"].items()}
    base = _base_scores(a, *truth["user_preferences"][user])
    last = history[-1]
    n_cat, n_shape = len(CATEGORIES), len(SHAPES)
    p_cat = np.full(n_cat, (1 - FOLLOW) / n_cat)
    p_cat[truth["next_category"][a["category"][last]]] += FOLLOW
    p_shape = np.full(n_shape, (1 - FOLLOW) / n_shape)
    p_shape[truth["next_shape"][a["shape"][last]]] += FOLLOW
    out = np.zeros(len(base))
    for c in range(n_cat):
        for s in range(n_shape):
            score = base + WEIGHTS["category"] * (a["category"] == c) + WEIGHTS["shape"] * (a["shape"] == s)
            score[history] = -np.inf
            p = np.exp(TEMPERATURE * (score - score.max()))
            out += p_cat[c] * p_shape[s] * p / p.sum()
    return out


def generate(out_dir: Path | str, cfg: DemoConfig | None = None, *, force: bool = False,
             log: Callable[[str], None] = lambda s: None) -> dict:
    """Write the demo catalogue to out_dir; returns a summary."""
    cfg = cfg or DemoConfig()
    if cfg.n_items < 100 or cfg.n_users < 10 or cfg.mean_length < 5:
        raise MgrError("the demo needs --items >= 100, --users >= 10 and --mean-length >= 5")
    out = Path(out_dir)
    if (out / "items.csv").exists() and not force:
        raise MgrError(f"{out} already holds a demo catalogue; pass --force to overwrite it")
    rng = np.random.default_rng(cfg.seed)
    a = _attributes(rng, cfg.n_items)
    ids = [f"d{i:05d}" for i in range(cfg.n_items)]
    (out / "images").mkdir(parents=True, exist_ok=True)
    log(f"drawing {cfg.n_items} item images")
    for i in range(cfg.n_items):
        draw_item(a, i, cfg.image_size, rng).save(out / "images" / f"{ids[i]}.png", optimize=False)
    log(f"simulating {cfg.n_users} users")
    seqs, truth = _simulate(rng, a, cfg)
    events = []
    for u, seq in enumerate(seqs):
        t = int(1_600_000_000 + rng.integers(0, 30 * 86400))
        for item in seq:
            t += int(rng.integers(3600, 5 * 86400))
            events.append((t, f"u{u:05d}", ids[item]))
    events.sort()  # a log in time order, as real interaction dumps are
    tmp = out / ".interactions.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "timestamp"])
        w.writerows((u, i, t) for t, u, i in events)
    tmp.replace(out / "interactions.csv")
    tmp = out / ".items.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "text", "image", "category", "material", "use", "shape",
                    "colour", "pattern"])
        colours = list(COLOURS)
        for i in range(cfg.n_items):
            w.writerow([ids[i], item_text(a, i), f"images/{ids[i]}.png",
                        CATEGORIES[a["category"][i]], MATERIALS[a["material"][i]],
                        USES[a["use"][i]], SHAPES[a["shape"][i]], colours[a["colour"][i]],
                        PATTERNS[a["pattern"][i]]])
    tmp.replace(out / "items.csv")
    summary = {"config": asdict(cfg), "items": cfg.n_items, "users": cfg.n_users,
               "interactions": len(events)}
    truth = {"item_ids": ids, "user_ids": [f"u{u:05d}" for u in range(cfg.n_users)], **truth}
    tmp = out / ".truth.json.tmp"
    tmp.write_text(json.dumps(truth) + "\n")
    tmp.replace(out / TRUTH)
    (out / "demo.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
