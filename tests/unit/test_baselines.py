"""The floor and the spread: the most-popular baseline, standard errors, and coverage."""

from __future__ import annotations

import math

import pytest

from mgr_cli.artifacts import read_jsonl
from mgr_cli.decoding.metrics import Coverage, Mean
from mgr_cli.decoding.popular import evaluate_popular, popular_items


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
    from mgr_cli.decoding.evaluate import metrics_table

    evaluate_popular(tiny_dataset, tmp_path / "pop", k=3)
    table = metrics_table([tmp_path / "pop" / "metrics.jsonl"]).splitlines()
    assert table[0].endswith("| top-1 items | coverage |")
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[0] == "pop" and cells[1] == "6" and " ± " in cells[5] and cells[-2:] == ["1", "0.500"]
