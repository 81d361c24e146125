"""MovieLens-100K (GroupLens layout), with optional TMDB overviews and posters.

    SOURCE/u.data            user \\t item \\t rating \\t unix_time
    SOURCE/u.item            item|title|release date|video date|url|19 genre flags (latin-1)
    SOURCE/items_tmdb.csv    optional: movie_id, overview, ... (a repeated id keeps its first row)
    SOURCE/posters/<item>.jpg

Every rating counts as an interaction (implicit feedback), ordered by time; equal
times keep the file's order.
"""

from __future__ import annotations

from pathlib import Path

from mgr_cli.data.dataset import Item
from mgr_cli.data.readers.common import RawData, add_item, as_time, join_text, read_csv

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]
U_ITEM = ["movie_id", "title", "release_date", "video_release_date", "url"] + GENRES


def _overviews(path: Path) -> tuple[dict[str, str], int]:
    out: dict[str, str] = {}
    repeated = 0
    for _, row in read_csv(path, ["movie_id", "overview"]):
        if row["movie_id"] in out:
            repeated += 1
            continue
        out[row["movie_id"]] = row["overview"]
    return out, repeated


def read(source: Path, *, interactions: Path | None = None, items: Path | None = None,
         images: Path | None = None, overviews: Path | None = None) -> RawData:
    data = interactions or source / "u.data"
    uitem = items or source / "u.item"
    tmdb = overviews or (source / "items_tmdb.csv")
    sources = [data, uitem]
    plots, repeated = ({}, 0)
    if tmdb.exists():
        plots, repeated = _overviews(tmdb)
        sources.append(tmdb)
    table: dict[str, Item] = {}
    for lineno, row in read_csv(uitem, [], delimiter="|", encoding="latin-1",
                                 header=U_ITEM, quoting=False):
        genres = [g for g in GENRES if row[g] == "1"]
        year = row["release_date"][-4:] if row["release_date"] else ""
        text = join_text(row["title"], "Genres: " + ", ".join(genres) if genres else "",
                         plots.get(row["movie_id"], ""))
        fields = {"genre": genres[0] if genres else "unknown", "genres": "|".join(genres),
                  "year": year}
        add_item(table, Item(row["movie_id"], text, f"{row['movie_id']}.jpg", fields), uitem, lineno)
    inter: list[tuple[str, str, float]] = []
    for lineno, row in read_csv(data, [], delimiter="\t",
                                 header=["user", "item", "rating", "time"], quoting=False):
        inter.append((row["user"], row["item"], as_time(row["time"], data, lineno, "time")))
    return RawData("movielens", table, inter, sources, image_root=images,
                   notes={"tmdb_repeated_rows_kept_first": repeated})
