"""Every reader on small files the tests write, through `prepare` and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import items_csv, make_image, write
from mgr_cli.data import PrepareConfig, load_dataset
from mgr_cli.data.prepare import prepare
from mgr_cli.errors import MgrError

K3 = PrepareConfig(k_core=3)
ORDER = {"u1": "abcd", "u2": "bcda", "u3": "cdab", "u4": "dabc"}


def run(fmt, src, tmp_path, cfg=K3, **kw):
    out = tmp_path / f"{fmt}.dataset.jsonl"
    prepare(fmt, src, out, cfg=cfg, force=True, **kw)
    ds, header = load_dataset(out)
    return ds, header


def ids(ds, u=0):
    return [ds.items[i].id for i in ds.sequences[u]]


# ------------------------------------------------------------------------------ H&M

ARTICLE_COLS = ("article_id,prod_name,product_type_name,product_group_name,colour_group_name,"
                "graphical_appearance_name,section_name,garment_group_name,detail_desc")


def hm_dir(tmp_path: Path, with_image=("101", "102", "103", "104")) -> Path:
    d = tmp_path / "hm"
    rows = [ARTICLE_COLS]
    for a in ["101", "102", "103", "104", "105"]:
        rows.append(f'{a},Name {a},Vest top,Garment Upper body,Black,Solid,Womens,Jersey,"Soft, light top {a}."')
    write(d / "articles.csv", "\n".join(rows) + "\n")
    tx = ["t_dat,customer_id,article_id,price,sales_channel_id"]
    for u, s in ORDER.items():
        # all on one day except the last item: same-day order must be the file's order
        for k, a in enumerate(s):
            day = "2020-09-17" if k == 3 else "2020-09-16"
            tx.append(f"{day},{u},{100 + 'abcd'.index(a) + 1},0.01,2")
    tx.append("2020-09-15,u1,105,0.01,2")  # item without image
    write(d / "transactions_train.csv.gz", "\n".join(tx) + "\n", gz=True)
    for a in with_image:
        make_image(d / "images" / "000" / f"{int(a):010d}.jpg")
    return d


def test_hm(tmp_path):
    ds, header = run("hm", hm_dir(tmp_path), tmp_path)
    assert ids(ds) == ["101", "102", "103", "104"]
    assert ds.items[0].text == ("Name 101. Vest top (Garment Upper body). Colour: Black. "
                                "Appearance: Solid. Section: Womens. Soft, light top 101.")
    assert ds.items[0].fields["product_type_name"] == "Vest top"
    assert ds.image_path(0).name == "0000000101.jpg" and ds.image_path(0).exists()
    assert header["meta"]["report"]["dropped_items_without_image"] == 1
    assert header["meta"]["stats"]["users"] == 4 and header["meta"]["modalities"] == ["text", "image"]
    assert {s["path"].split("/")[-1] for s in header["sources"]} == {"transactions_train.csv.gz",
                                                                       "articles.csv"}


def test_hm_without_images_keeps_every_item(tmp_path):
    ds, header = run("hm", hm_dir(tmp_path), tmp_path, cfg=PrepareConfig(k_core=1), no_images=True)
    assert len(ds.items) == 5 and all(it.image is None for it in ds.items)
    assert header["meta"]["modalities"] == ["text"]


def test_hm_bad_image_error_and_drop(tmp_path):
    d = hm_dir(tmp_path)
    (d / "images" / "000" / "0000000102.jpg").write_bytes(b"\xff\xd8not a jpeg")
    with pytest.raises(MgrError, match=r"^1 images do not decode: .*0000000102\.jpg \(does not "
                       r"decode .*\); replace them or pass --bad-images drop$"):
        run("hm", d, tmp_path)
    assert not (tmp_path / "hm.dataset.jsonl").exists()
    ds, header = run("hm", d, tmp_path, cfg=PrepareConfig(k_core=3, bad_images="drop"))
    assert header["meta"]["report"]["dropped_items_bad_image"] == 1 and len(ds.items) == 3


def test_hm_missing_column(tmp_path):
    d = hm_dir(tmp_path)
    write(d / "articles.csv", "article_id,prod_name\n1,x\n")
    with pytest.raises(MgrError, match=r"articles\.csv: missing column\(s\) product_type_name, "
                       r"product_group_name, colour_group_name"):
        run("hm", d, tmp_path)


def test_hm_bad_date(tmp_path):
    d = hm_dir(tmp_path)
    write(d / "transactions_train.csv.gz", "t_dat,customer_id,article_id\nyesterday,u,101\n", gz=True)
    with pytest.raises(MgrError, match=r"transactions_train\.csv\.gz:2: t_dat 'yesterday' is not"):
        run("hm", d, tmp_path)


# ------------------------------------------------------------------------ MovieLens

def ml_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ml"
    flags = ["0|0|0|1|1|1" + "|0" * 13, "0|1" + "|0" * 17, "0|0|0|0|0|0|0|0|1" + "|0" * 10,
             "0" * 1 + "|0" * 17 + "|1"]
    titles = ['Toy Story (1995)', 'Café "Noir" (1996)', 'Heat (1995)', 'Unforgiven (1992)']
    rows = [f"{i + 1}|{t}|01-Jan-{t[-5:-1]}||http://x|{f}" for i, (t, f) in enumerate(zip(titles, flags))]
    write(d / "u.item", "\n".join(rows) + "\n", encoding="latin-1")
    data = []
    for u, s in ORDER.items():
        for k, a in enumerate(s):
            data.append(f"{u[1:]}\t{'abcd'.index(a) + 1}\t4\t{880000000 + 10 * k}")
    data.reverse()  # file order must not matter: time does
    write(d / "u.data", "\n".join(data) + "\n")
    write(d / "items_tmdb.csv", "movie_id,title,overview\n1,Toy Story,Toys come alive.\n"
          "1,Toy Story,A second row.\n2,Cafe,\"A café, at night.\"\n")
    for i in range(1, 5):
        make_image(d / "posters" / f"{i}.jpg")
    return d


def test_movielens(tmp_path):
    ds, header = run("movielens", ml_dir(tmp_path), tmp_path)
    assert ds.user_ids == ["4", "3", "2", "1"]  # first appearance in the file
    assert ids(ds, 3) == ["1", "2", "3", "4"]  # time order, not file order
    by_id = {it.id: it for it in ds.items}
    assert by_id["1"].text == ("Toy Story (1995). Genres: Animation, Children's, Comedy. "
                               "Toys come alive.")
    assert by_id["2"].text.startswith('Café "Noir" (1996). Genres: Action. A café, at night')
    assert by_id["1"].fields == {"genre": "Animation", "genres": "Animation|Children's|Comedy",
                                 "year": "1995"}
    assert header["meta"]["report"]["tmdb_repeated_rows_kept_first"] == 1
    assert header["meta"]["stats"]["items_with_image"] == 4


def test_movielens_malformed_line(tmp_path):
    d = ml_dir(tmp_path)
    with open(d / "u.data", "a") as f:
        f.write("1\t2\t3\n")
    with pytest.raises(MgrError, match=r"u\.data:17: expected 4 fields, got 3$"):
        run("movielens", d, tmp_path)


# --------------------------------------------------------------------------- Amazon

def p5_dir(tmp_path: Path, recbole=True) -> Path:
    d = tmp_path / "p5"
    write(d / "user_sequence.txt", "".join(f"{u} " + " ".join("B" + c for c in s) + "\n"
                                           for u, s in ORDER.items()))
    if recbole:
        write(d / "Amazon_X.item", "item_id:token\ttitle:token\tcategories:token_seq\tbrand:token\tprice:float\n"
              "Ba\tLip balm\t'Beauty', 'Makeup', 'Lips'\tAcme\t5.5\n"
              'Bb\t"Cream\nVanilla"\t\'Beauty\', \'Skin\'\tBee\t\n'
              "Bc\tSoap\t'Beauty'\t\tnan\nBd\tBrush 12\" wide\t'Beauty', 'Tools'\tCo\t0\n")
    else:
        write(d / "item_text_ids.txt", "Ba lip balm\nBb vanilla cream\nBc soap\nBd brush\n")
    return d


def test_amazon_p5_recbole(tmp_path):
    ds, header = run("amazon-p5", p5_dir(tmp_path), tmp_path)
    assert [it.id for it in ds.items] == ["Ba", "Bb", "Bc", "Bd"]  # first appearance
    assert ids(ds, 1) == ["Bb", "Bc", "Bd", "Ba"]  # file order is time order
    assert ds.items[0].text == "Lip balm. Brand: Acme. Categories: Beauty, Makeup, Lips. Price: $5.50."
    assert "Price" not in ds.items[2].text + ds.items[3].text  # nan and 0 are no price
    assert ds.items[1].text.startswith("Cream Vanilla.")
    assert ds.items[3].text.startswith('Brush 12" wide.')
    assert ds.items[0].fields["category"] == "Lips"


def test_amazon_p5_short_texts(tmp_path):
    ds, _ = run("amazon-p5", p5_dir(tmp_path, recbole=False), tmp_path)
    assert ds.items[1].text == "vanilla cream"


def test_amazon_p5_unknown_item(tmp_path):
    d = p5_dir(tmp_path, recbole=False)
    with open(d / "user_sequence.txt", "a") as f:
        f.write("u9 Ba Bz Bc\n")
    with pytest.raises(MgrError, match=r"^1 interactions refer to 1 item ids missing"):
        run("amazon-p5", d, tmp_path)
    ds, header = run("amazon-p5", d, tmp_path, cfg=PrepareConfig(k_core=3, unknown_items="drop"))
    assert header["meta"]["report"]["dropped_unknown_item_interactions"] == 1


def test_amazon_raw_2014(tmp_path):
    d = tmp_path / "raw14"
    reviews = [json.dumps({"reviewerID": u, "asin": "A" + c, "unixReviewTime": 1000 - 10 * k,
                           "overall": 5.0}) for u, s in ORDER.items() for k, c in enumerate(s)]
    write(d / "reviews_Toys_5.json.gz", "\n".join(reviews) + "\n", gz=True)
    meta = [repr({"asin": "A" + c, "title": f"Toy {c}", "categories": [["Toys", f"Cat {c}"]],
                  "description": f"A toy called {c}", "imUrl": "http://x"}) for c in "abcd"]
    write(d / "meta_Toys.json.gz", "\n".join(meta) + "\n", gz=True)
    ds, header = run("amazon-raw", d, tmp_path)
    assert ids(ds) == ["Ad", "Ac", "Ab", "Aa"]  # times decrease along the file
    assert ds.items[0].text == "Toy d. Categories: Toys, Cat d. A toy called d."
    assert ds.items[0].fields["category"] == "Cat d"


def test_amazon_raw_2018(tmp_path):
    d = tmp_path / "raw18"
    reviews = [json.dumps({"reviewerID": u, "asin": "A" + c, "unixReviewTime": 5})
               for u, s in ORDER.items() for c in s]
    write(d / "Musical_Instruments_5.json", "\n".join(reviews) + "\n")
    meta = [json.dumps({"asin": "A" + c, "title": f"Guitar {c}", "brand": "Fen",
                        "category": ["Musical Instruments", "Guitars"],
                        "description": ["Six strings.", "Maple neck."]}) for c in "abcd"]
    write(d / "meta_Musical_Instruments.json", "\n".join(meta) + "\n")
    ds, _ = run("amazon-raw", d, tmp_path)
    assert ids(ds) == ["Aa", "Ab", "Ac", "Ad"]  # equal times keep file order
    assert ds.items[0].text == ("Guitar a. Brand: Fen. Categories: Musical Instruments, Guitars. "
                                "Six strings., Maple neck.")


def test_amazon_raw_bad_line(tmp_path):
    d = tmp_path / "raw"
    write(d / "reviews_X_5.json", '{"reviewerID": "u", "asin": "a", "unixReviewTime": 1}\n{oops\n')
    write(d / "meta_X.json", repr({"asin": "a", "title": "t"}) + "\n")
    with pytest.raises(MgrError, match=r"reviews_X_5\.json:2: invalid JSON"):
        run("amazon-raw", d, tmp_path)


# --------------------------------------------------------------------------- LC-Rec

def lcrec_dir(tmp_path: Path, with_items=True) -> Path:
    d = tmp_path / "lc"
    inter = {str(k): ["abcd".index(c) for c in s] for k, s in enumerate(ORDER.values())}
    inter = {"10": inter["3"], **{k: v for k, v in inter.items() if k != "3"}}  # keys unordered
    write(d / "Inst.inter.json", json.dumps(inter))
    write(d / "Inst.item2id", "".join(f"ASIN{i}\t{i}\n" for i in range(4)))
    if with_items:
        write(d / "Inst.item.json", json.dumps({str(i): {"title": f"T{i}", "description": "D",
                                                         "brand": "B", "categories": "X,Y"}
                                                for i in range(4)}))
    return d


def test_lcrec(tmp_path):
    ds, header = run("lcrec", lcrec_dir(tmp_path), tmp_path)
    assert [it.id for it in ds.items] == ["0", "1", "2", "3"]  # given order, not appearance
    assert ds.user_ids == ["0", "1", "2", "10"]  # numeric key order
    assert ds.items[0].text == "T0. D." and ds.items[0].fields["asin"] == "ASIN0"
    assert ds.items[0].fields["category"] == "Y"


def test_lcrec_without_item_text(tmp_path):
    ds, header = run("lcrec", lcrec_dir(tmp_path, with_items=False), tmp_path)
    assert header["meta"]["modalities"] == [] and ds.items[2].text == ""


# -------------------------------------------------------------------------- generic

def test_generic_csv_with_images(tmp_path, generic_dir):
    write(generic_dir / "items.csv", items_csv("abcd", image=True, extra="toys"))
    for c in "abcd":
        make_image(generic_dir / "img" / f"{c}.png")
    ds, header = run("generic", generic_dir, tmp_path)
    assert ids(ds, 3) == list("dabc")
    assert ds.items[0].fields == {"category": "toys"} and ds.image_path(0).exists()
    assert header["meta"]["fields"] == ["category"]


def test_generic_jsonl(tmp_path):
    d = tmp_path / "gj"
    write(d / "interactions.jsonl", "".join(json.dumps({"user_id": u, "item_id": c, "timestamp": k})
                                            + "\n" for u, s in ORDER.items() for k, c in enumerate(s)))
    write(d / "items.jsonl", "".join(json.dumps({"item_id": c, "text": c.upper(), "size": 3}) + "\n"
                                     for c in "abcd"))
    ds, _ = run("generic", d, tmp_path)
    assert ids(ds) == list("abcd") and ds.items[0].fields == {"size": "3"}


def test_generic_missing_image_is_dropped_or_kept(tmp_path, generic_dir):
    write(generic_dir / "items.csv", items_csv("abcde", image=True))
    with open(generic_dir / "interactions.csv", "a") as f:
        f.write("u1,e,9\nu2,e,9\nu3,e,9\n")
    for c in "abcd":
        make_image(generic_dir / "img" / f"{c}.png")
    ds, h = run("generic", generic_dir, tmp_path)
    assert len(ds.items) == 4 and h["meta"]["report"]["dropped_items_without_image"] == 1
    ds, h = run("generic", generic_dir, tmp_path,
                cfg=PrepareConfig(k_core=3, drop_missing_images=False))
    assert len(ds.items) == 5 and h["meta"]["report"]["items_without_image"] == 1


@pytest.mark.parametrize("name,text,message", [
    ("items.csv", "item_id,text\na,x\nb,y,z\n", r"items\.csv:3: expected 2 fields, got 3$"),
    ("items.csv", "item_id,name\na,x\n", r"items\.csv: missing column\(s\) text \(found: item_id, name\)$"),
    ("items.csv", "item_id,text\na,x\nb,y\na,z\n", r"items\.csv:4: duplicate item id 'a'; each item must appear once$"),
    ("interactions.csv", "user_id,item_id,timestamp\nu,a,soon\n", r"interactions\.csv:2: timestamp 'soon' is not a number$"),
])
def test_generic_bad_input(tmp_path, generic_dir, name, text, message):
    write(generic_dir / name, text)
    with pytest.raises(MgrError, match=message):
        run("generic", generic_dir, tmp_path)
    assert not (tmp_path / "generic.dataset.jsonl").exists()


def test_generic_bad_json_line(tmp_path):
    d = tmp_path / "gj"
    write(d / "interactions.jsonl", '{"user_id": "u", "item_id": "a"}\n{"user_id": "u"\n')
    write(d / "items.jsonl", '{"item_id": "a", "text": "x"}\n')
    with pytest.raises(MgrError, match=r"interactions\.jsonl:2: invalid JSON"):
        run("generic", d, tmp_path)
    write(d / "interactions.jsonl", '{"user_id": "u"}\n')
    with pytest.raises(MgrError, match=r"interactions\.jsonl:1: missing field\(s\) item_id$"):
        run("generic", d, tmp_path)


def test_missing_files_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MgrError, match=r"empty: no interactions file found \(looked for "
                       r"interactions\.csv\*, interactions\.jsonl\*\); pass the file explicitly"):
        run("generic", tmp_path / "empty", tmp_path)
    with pytest.raises(MgrError, match=r"nowhere: source folder not found$"):
        run("generic", tmp_path / "nowhere", tmp_path)
