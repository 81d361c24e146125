"""H&M Personalized Fashion Recommendations (Kaggle layout).

    SOURCE/transactions_train.csv[.gz]   t_dat,customer_id,article_id,...
    SOURCE/articles.csv                  article_id, prod_name, product_type_name, ...
    SOURCE/images/<3 digits>/<10-digit article_id>.jpg

`t_dat` is a date without time: purchases on the same day keep the file's order.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mgr_cli.data.dataset import Item
from mgr_cli.data.readers.common import RawData, add_item, find_file, join_text, read_csv
from mgr_cli.errors import MgrError

TEXT_FIELDS = ["prod_name", "product_type_name", "product_group_name", "colour_group_name",
               "graphical_appearance_name", "section_name", "detail_desc"]
CATEGORY_FIELDS = ["product_type_name", "product_group_name", "colour_group_name",
                   "garment_group_name", "graphical_appearance_name", "section_name",
                   "index_group_name"]


def image_relpath(article_id: str) -> str:
    padded = article_id.zfill(10)
    return f"{padded[:3]}/{padded}.jpg"


def _article_id(raw: str, path: Path, lineno: int) -> str:
    try:
        return str(int(raw))
    except ValueError:
        raise MgrError(f"{path}:{lineno}: article_id {raw!r} is not a number") from None


def article_text(row: dict[str, str]) -> str:
    return join_text(
        row["prod_name"],
        f"{row['product_type_name']} ({row['product_group_name']})",
        f"Colour: {row['colour_group_name']}",
        f"Appearance: {row['graphical_appearance_name']}",
        f"Section: {row['section_name']}",
        row.get("detail_desc", ""),
    )


def read(source: Path, *, interactions: Path | None = None, items: Path | None = None,
         images: Path | None = None) -> RawData:
    tx = interactions or find_file(source, "transactions_train.csv.gz", "transactions_train.csv",
                                   what="H&M transactions file")
    art = items or find_file(source, "articles.csv", "articles.csv.gz", what="H&M articles file")
    table: dict[str, Item] = {}
    for lineno, row in read_csv(art, ["article_id"] + TEXT_FIELDS):
        aid = _article_id(row["article_id"], art, lineno)
        fields = {k: row[k] for k in CATEGORY_FIELDS if k in row}
        add_item(table, Item(aid, article_text(row), image_relpath(aid), fields), art, lineno)
    inter: list[tuple[str, str, float]] = []
    for lineno, row in read_csv(tx, ["t_dat", "customer_id", "article_id"]):
        try:
            day = dt.date.fromisoformat(row["t_dat"]).toordinal()
        except ValueError:
            raise MgrError(f"{tx}:{lineno}: t_dat {row['t_dat']!r} is not a YYYY-MM-DD date") from None
        inter.append((row["customer_id"], _article_id(row["article_id"], tx, lineno), day))
    return RawData("hm", table, inter, [tx, art], image_root=images)
