"""AMI of semantic IDs, checked against scikit-learn on hand-made labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from mgr_cli.analysis.ami import TABLE1, ami, cluster_labels, field_labels, pairwise, to_markdown
from mgr_cli.errors import MgrError

CODES = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 0], [1, 1, 0], [1, 2, 0], [2, 2, 0]])


def test_cluster_labels_levels_and_prefixes():
    assert cluster_labels(CODES).tolist() == [0, 0, 0, 1, 1, 2]
    assert cluster_labels(CODES, level=2).tolist() == [1, 1, 2, 1, 2, 2]
    p2 = cluster_labels(CODES, prefix=2)
    assert p2[0] == p2[1] and len(set(p2.tolist())) == 5
    with pytest.raises(MgrError, match=r"--level 4 is outside 1\.\.3"):
        cluster_labels(CODES, level=4)
    with pytest.raises(MgrError, match="give --level or --prefix, not both"):
        cluster_labels(CODES, level=1, prefix=1)


def test_ami_matches_sklearn_on_hand_labels():
    a = [0, 0, 0, 1, 1, 1, 2, 2]
    b = [1, 1, 0, 0, 2, 2, 2, 2]
    assert ami(np.array(a), np.array(b)) == pytest.approx(adjusted_mutual_info_score(a, b))
    assert ami(np.array(a), np.array([5, 5, 5, 9, 9, 9, 7, 7])) == pytest.approx(1.0)  # relabelled
    cats = field_labels(["shoe", "shoe", "hat", "bag", "hat", "shoe"])
    assert cats.tolist() == [2, 2, 1, 0, 1, 2]
    first = cluster_labels(CODES)
    assert ami(first, cats) == pytest.approx(adjusted_mutual_info_score([0, 0, 0, 1, 1, 2], [2, 2, 1, 0, 1, 2]))


def test_pairwise_puts_table1_first():
    rng = np.random.default_rng(0)
    named = {m: rng.integers(3, size=30) for m in ("fused", "text", "image")}
    rows = pairwise(named)
    assert [r["pair"] for r in rows] == [t[0] for t in TABLE1]
    assert rows[0]["ami"] == pytest.approx(adjusted_mutual_info_score(named["image"], named["text"]))
    md = to_markdown(rows[:1], "T")
    assert md == f"**T**\n\n| Img vs. Txt |\n|---|\n| {rows[0]['ami']:.4f} |\n"
