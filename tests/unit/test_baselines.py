"""The floor and the spread: the most-popular baseline, standard errors, and coverage."""

from __future__ import annotations

import math

import pytest

from mgr_cli.artifacts import read_jsonl
from mgr_cli.evaluation.metrics import Coverage, Mean
from mgr_cli.decoding.baselines import evaluate_popular, popular_items
from mgr_cli.errors import MgrError


def test_popular_items_count_only_the_training_split():
    # the last two items of each user (validation, test targets) are never counted
    seqs = [[0, 1, 9, 9], [1, 2, 8, 8], [1, 3, 7, 7]]
    ranked, scores = popular_items(seqs, 3)
    assert ranked == [1, 0, 2] and scores == pytest.approx([0.5, 1 / 6, 1 / 6])


def test_standard_errors_match_the_textbook_formula():
    m = Mean()
    for v in (1.0, 0.0, 0.0, 1.0, 1.0):
        m.add({"hits@5": v})
    p = 0.6
    assert m.result()["hits@5"] == pytest.approx(p)
    assert m.errors()["hits@5"] == pytest.approx(math.sqrt(p * (1 - p) * 5 / 4 / 5))
    other = Mean()
    other.add({"hits@5": 0.0})
    m.merge(other)
    assert m.errors()["hits@5"] == pytest.approx(math.sqrt(0.5 * 0.5 * 6 / 5 / 6))


def test_coverage_counts_distinct_first_items_and_the_union_of_lists():
    c = Coverage()
    c.add(["a", "b"])
    c.add(["a", "c"])
    other = Coverage()
    other.add(["d", "a"])
    c.merge(other)
    assert c.result(n_items=8, k=2) == {"distinct_top1": 2, "coverage@2": 0.5}


def test_popular_baseline_writes_an_evaluation(tiny_dataset, tmp_path):
    meta = evaluate_popular(tiny_dataset, tmp_path / "pop", k=3)
    assert meta["users"] == 6 and meta["distinct_top1"] == 1 and meta["coverage@3"] == 0.5
    _, rows = read_jsonl(tmp_path / "pop" / "predictions.jsonl", "predictions")
    assert len({tuple(r["items"]) for r in rows}) == 1
    hits = sum(r["rank"] is not None and r["rank"] <= 3 for r in rows) / 6
    assert meta["metrics"]["hits@5"] == pytest.approx(hits)
    assert meta["standard_errors"]["hits@5"] >= 0
    _, (record,) = read_jsonl(tmp_path / "pop" / "metrics.jsonl", "metrics")
    assert record["hits@5"] == meta["metrics"]["hits@5"] and "hits@5_se" in record


def test_metrics_table_shows_errors_and_coverage(tiny_dataset, tmp_path):
    from mgr_cli.evaluation.compare import metrics_table

    evaluate_popular(tiny_dataset, tmp_path / "pop", k=3)
    table = metrics_table([tmp_path / "pop" / "metrics.jsonl"]).splitlines()
    assert table[0].endswith("| top-1 items | coverage |")
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[0] == "pop" and cells[1] == "6" and " ± " in cells[5] and cells[-2:] == ["1", "0.500"]


def test_random_baseline_is_seeded_and_near_chance(tiny_dataset, tmp_path):
    from mgr_cli.decoding.baselines import evaluate_random

    a = evaluate_random(tiny_dataset, tmp_path / "a", k=3, seed=1)
    b = evaluate_random(tiny_dataset, tmp_path / "b", k=3, seed=1)
    _, ra = read_jsonl(tmp_path / "a" / "predictions.jsonl", "predictions")
    _, rb = read_jsonl(tmp_path / "b" / "predictions.jsonl", "predictions")
    assert [r["items"] for r in ra] == [r["items"] for r in rb]  # same seed, same lists
    assert all(len(set(r["items"])) == 3 for r in ra)  # distinct items
    assert a["metrics"] == b["metrics"] and a["layout"] == "random"
    evaluate_random(tiny_dataset, tmp_path / "c", k=3, seed=2)
    _, rc = read_jsonl(tmp_path / "c" / "predictions.jsonl", "predictions")
    assert [r["items"] for r in rc] != [r["items"] for r in ra]
    with pytest.raises(MgrError, match="--top-k 7 exceeds the catalogue's 6 items"):
        evaluate_random(tiny_dataset, tmp_path / "d", k=7)


@pytest.fixture(scope="module")
def demo_catalogue(tmp_path_factory):
    from mgr_cli.data.demo import DemoConfig, generate
    from mgr_cli.data.prepare import prepare

    d = tmp_path_factory.mktemp("demo")
    generate(d / "raw", DemoConfig(n_items=200, n_users=300, seed=3))
    prepare("generic", d / "raw", d / "dataset.jsonl", name="demo")
    return d


def test_oracle_is_a_distribution_that_knows_the_rules(demo_catalogue):
    import json

    import numpy as np

    from mgr_cli.data.demo import oracle_probabilities

    truth = json.loads((demo_catalogue / "raw" / "truth.json").read_text())
    p = oracle_probabilities(truth, 0, [5, 17, 42])
    assert p.sum() == pytest.approx(1.0) and (p[[5, 17, 42]] == 0).all() and (p >= 0).all()
    # the next category follows the last item's: most of the mass is on that category
    cats = np.asarray(truth["items"]["category"])
    follow = truth["next_category"][cats[42]]
    assert p[cats == follow].sum() > 0.5


def test_oracle_row_is_the_ceiling(demo_catalogue, tmp_path):
    from mgr_cli.decoding.baselines import evaluate_oracle, evaluate_random

    d = demo_catalogue
    oracle = evaluate_oracle(d / "dataset.jsonl", d / "raw" / "truth.json", tmp_path / "o")
    chance = evaluate_random(d / "dataset.jsonl", tmp_path / "r")
    pop = evaluate_popular(d / "dataset.jsonl", tmp_path / "p")
    o, se = oracle["metrics"]["hits@5"], oracle["standard_errors"]["hits@5"]
    assert o - 2 * se > pop["metrics"]["hits@5"] > chance["metrics"]["hits@5"]
    assert oracle["layout"] == "oracle" and oracle["truth_sha256"]
    _, rows = read_jsonl(tmp_path / "o" / "predictions.jsonl", "predictions")
    assert all(len(r["items"]) == 20 and r["scores"] == sorted(r["scores"], reverse=True) for r in rows)


def test_oracle_refuses_another_catalogue(demo_catalogue, tiny_dataset, tmp_path):
    from mgr_cli.decoding.baselines import evaluate_oracle

    with pytest.raises(MgrError, match="does not know .* the oracle needs the dataset prepared from that demo"):
        evaluate_oracle(tiny_dataset, demo_catalogue / "raw" / "truth.json", tmp_path / "o")
    bad = tmp_path / "truth.json"
    bad.write_text("[1, 2]")
    with pytest.raises(MgrError, match="not the truth file of mgr demo-data"):
        evaluate_oracle(tiny_dataset, bad, tmp_path / "o2")
    assert not (tmp_path / "o" / "metrics.jsonl").exists()
