"""The decoder against the model's own forward pass and against brute-force scoring of
every item; the metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgr_cli.decoding.beam import PrefixTree, beam_search, ranked_items
from mgr_cli.evaluation.metrics import Mean, user_metrics
from mgr_cli.decoding.t5step import T5Decoder
from mgr_cli.models.t5 import ModelConfig, build_model

V = 40


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = build_model(V, ModelConfig(layers=2, decoder_layers=2, d_model=32, heads=4, d_kv=8,
                                       d_ff=64, dropout=0.0)).eval()
    rng = np.random.default_rng(0)
    items = np.unique(rng.integers(2, V, size=(60, 3)), axis=0)
    src = torch.tensor(rng.integers(2, V, size=(3, 7)))
    mask = torch.ones_like(src)
    mask[1, 5:] = 0
    src[1, 5:] = 0
    return model, items, src, mask


def brute_force(model, items, src, mask):
    full = torch.cat([torch.tensor(items), torch.ones(len(items), 1, dtype=torch.long)], 1)
    out = []
    with torch.no_grad():
        for u in range(len(src)):
            logits = model(input_ids=src[u:u + 1].expand(len(items), -1),
                           attention_mask=mask[u:u + 1].expand(len(items), -1), labels=full).logits
            out.append(torch.log_softmax(logits, -1).gather(-1, full[..., None]).squeeze(-1).sum(-1))
    return torch.stack(out)


def gated_model():
    """A T5 v1.1-style model (gated GELU feed-forward, untied LM head, d_model != heads * d_kv),
    which a user's --init from a local pretrained checkpoint can bring."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(1)
    return T5ForConditionalGeneration(T5Config(
        vocab_size=V, d_model=24, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3, num_heads=4,
        dropout_rate=0.0, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)).eval()


def test_item_inputs_sum_each_items_tokens():
    from mgr_cli.models.t5 import item_inputs

    embed = torch.nn.Embedding(10, 2)
    with torch.no_grad():
        embed.weight.copy_(torch.arange(20.0).view(10, 2))
    ids = torch.tensor([[2, 3, 4, 5, 1], [6, 7, 1, 0, 0]])  # 2 items of 2 + </s>; 1 item + </s>
    x, mask = item_inputs(embed, ids, (ids != 0).long(), 2)
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    w = embed.weight
    torch.testing.assert_close(x[0], torch.stack([w[2] + w[3], w[4] + w[5], w[1]]))
    torch.testing.assert_close(x[1, :2], torch.stack([w[6] + w[7], w[1]]))
    assert not x[1, 2].any()  # a padding position is all zeros


def test_item_input_decoder_matches_the_model():
    """A model with one encoder position per item: the decoder's log-probabilities equal the
    model's forward pass on the summed item embeddings, with a padded user."""
    from mgr_cli.models.t5 import item_inputs, set_item_width

    torch.manual_seed(2)
    model = build_model(V, ModelConfig(layers=2, decoder_layers=2, d_model=32, heads=4, d_kv=8,
                                       d_ff=64, dropout=0.0)).eval()
    set_item_width(model, 3)
    rng = np.random.default_rng(1)
    src = torch.tensor(rng.integers(2, V, size=(3, 10)))
    src[:, 9] = 1  # three items and </s>
    src[1, 3], src[1, 4:] = 1, 0  # one item and </s>
    mask = (src != 0).long()
    tgt = torch.tensor(rng.integers(2, V, size=(3, 3)))
    dec_in = torch.cat([torch.zeros(3, 1, dtype=torch.long), tgt], 1)
    with torch.no_grad():
        x, m = item_inputs(model.get_input_embeddings(), src, mask, 3)
        assert m.tolist() == [[1] * 4, [1, 1, 0, 0], [1] * 4]
        ref = torch.log_softmax(model(inputs_embeds=x, attention_mask=m, decoder_input_ids=dec_in).logits, -1)
    dec = T5Decoder(model, 4)
    cross = dec.encode(src, mask)
    cache = dec.new_cache(3, 1, 4, cross[0].bias)
    for t in range(4):
        last, _ = dec.step(dec_in[:, None, t:t + 1], t, cache, cross)
        torch.testing.assert_close(last[:, 0], ref[:, t], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["tiger", "gated"])
def test_step_logits_match_the_model(setup, kind):
    model, items, src, mask = setup
    if kind == "gated":
        model = gated_model()
    dec = T5Decoder(model, 5)
    tgt = torch.tensor(items[:3])
    dec_in = torch.cat([torch.zeros(3, 1, dtype=torch.long), tgt], 1)
    with torch.no_grad():
        ref = torch.log_softmax(model(input_ids=src, attention_mask=mask, decoder_input_ids=dec_in).logits, -1)
    cross = dec.encode(src, mask)  # user 1 is padded: the packed encoder must skip it exactly
    cache = dec.new_cache(3, 1, 5, cross[0].bias)
    for t in range(4):  # one position per call
        last, fed = dec.step(dec_in[:, None, t:t + 1], t, cache, cross)
        torch.testing.assert_close(last[:, 0], ref[:, t], atol=1e-5, rtol=1e-5)
        assert fed.shape == (3, 1, 0)
    fed_ref = ref[:, :-1].gather(-1, dec_in[:, 1:, None]).squeeze(-1)  # [3, 3]: the fed tokens' log-probs
    for first in (0, 1, 2):  # positions before `first` one at a time, the rest in one pass (forced runs)
        cache = dec.new_cache(3, 1, 5, cross[0].bias)
        for t in range(first):
            dec.step(dec_in[:, None, t:t + 1], t, cache, cross)
        last, fed = dec.step(dec_in[:, None, first:], first, cache, cross)
        torch.testing.assert_close(last[:, 0], ref[:, 3], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fed[:, 0], fed_ref[:, first:], atol=1e-5, rtol=1e-5)


def test_full_beam_equals_brute_force(setup):
    model, items, src, mask = setup
    tree = PrefixTree.build(items)
    leaves, scores = beam_search(T5Decoder(model, 4), tree, src, mask, beams=len(items))
    ranked = ranked_items(tree, leaves, scores, len(items))
    bf = brute_force(model, items, src, mask).sort(dim=1, descending=True)
    for u in range(3):
        assert ranked[u][0] == bf.indices[u].tolist()
        np.testing.assert_allclose(ranked[u][1], bf.values[u].numpy(), atol=1e-4)


@pytest.mark.parametrize("beams", [None, 5])
def test_forced_tokens_in_one_pass_equal_brute_force(setup, beams):
    """Items whose first token is shared (a forced root) and whose last token follows from
    the two before (forced, as an LF++ item's later modalities): runs of forced depths are
    fed in one decoder pass; scores must still be the model's, for wide and narrow beams."""
    model, items, src, mask = setup
    pairs = np.unique(items[:, :2], axis=0)
    forced = np.column_stack([np.full(len(pairs), 5), pairs, (pairs.sum(1) % (V - 2)) + 2])
    tree = PrefixTree.build(forced)
    assert [t.shape[1] == 1 for t in tree.child_tokens] == [True, False, False, True]
    width = beams or len(forced)
    leaves, scores = beam_search(T5Decoder(model, 5), tree, src, mask, beams=width)
    bf = brute_force(model, forced, src, mask)
    for u, (got, sc) in enumerate(ranked_items(tree, leaves, scores, width)):
        if beams is None:  # exhaustive: the exact ranking
            assert got == bf[u].sort(descending=True).indices.tolist()
        assert len(set(got)) == width and sc == sorted(sc, reverse=True)
        np.testing.assert_allclose(sc, bf[u, got].numpy(), atol=1e-4)


def test_narrow_beam_returns_valid_distinct_items(setup):
    model, items, src, mask = setup
    tree = PrefixTree.build(items)
    leaves, scores = beam_search(T5Decoder(model, 4), tree, src, mask, beams=5)
    bf = brute_force(model, items, src, mask)
    for u, (got, sc) in enumerate(ranked_items(tree, leaves, scores, 5)):
        assert len(set(got)) == 5 and sc == sorted(sc, reverse=True)
        np.testing.assert_allclose(sc, bf[u, got].numpy(), atol=1e-4)  # exact sequence scores


def test_fewer_items_than_beams(setup):
    model, items, src, mask = setup
    tree = PrefixTree.build(items[:3])
    leaves, scores = beam_search(T5Decoder(model, 4), tree, src, mask, beams=8)
    assert (leaves[:, 3:] == -1).all() and sorted(ranked_items(tree, leaves, scores, 8)[0][0]) == [0, 1, 2]


def test_decoding_threads_rank_like_one_search(setup):
    """A batch cut between worker threads (each part padded to its own longest) ranks every
    user as one search of the whole batch does; the intra-op thread count comes back."""
    from mgr_cli.decoding.rank import DecodeThreads, decode_batch
    from mgr_cli.errors import MgrError

    model, items, _, _ = setup
    tree = PrefixTree.build(items)
    rng = np.random.default_rng(1)
    sources = [rng.integers(2, V, size=n).tolist() for n in (3, 9, 5, 12, 7)]
    dec, cpu = T5Decoder(model, 4), torch.device("cpu")
    one = decode_batch(dec, tree, sources, beams=6, k=6, device=cpu)
    before = torch.get_num_threads()
    with DecodeThreads(3) as threads:
        split = decode_batch(dec, tree, sources, beams=6, k=6, device=cpu, threads=threads)
    assert torch.get_num_threads() == before
    assert [items for items, _ in split] == [items for items, _ in one]
    np.testing.assert_allclose([s for _, sc in split for s in sc], [s for _, sc in one for s in sc], atol=1e-5)
    with pytest.raises(MgrError, match="--workers must be positive"):
        DecodeThreads(0)


def test_prefix_tree_tables():
    tree = PrefixTree.build(np.array([[5, 7], [5, 8], [6, 7]]))
    assert tree.child_tokens[0].tolist() == [[5, 6]]
    assert tree.child_tokens[1].tolist() == [[7, 8], [7, -1]]
    assert tree.leaf_items == [[0], [1], [2]]


def test_metrics_by_hand():
    m = user_metrics([5, 3, 9], 3)
    assert m["mrr"] == 0.5 and m["hits@1"] == 0 and m["hits@5"] == 1
    assert m["ndcg@5"] == pytest.approx(1 / math.log2(3))
    miss = user_metrics([5, 9], 3)
    assert all(v == 0 for v in miss.values())
    first = user_metrics(list(range(30)), 0)
    assert first["mrr"] == 1 and first["ndcg@20"] == 1
    late = user_metrics(list(range(30)), 12)
    assert late["hits@10"] == 0 and late["hits@20"] == 1 and late["ndcg@10"] == 0
    mean = Mean()
    for mm in (m, miss):
        mean.add(mm)
    assert mean.result()["mrr"] == 0.25 and mean.n == 2


def test_validation_rows_are_a_seeded_sample():
    from mgr_cli.evaluation.metrics import validation_rows

    assert validation_rows(5, 10, 0) == [0, 1, 2, 3, 4]
    rows = validation_rows(1000, 50, 3)
    assert len(set(rows)) == 50 and rows == sorted(rows) and max(rows) > 500
    assert rows == validation_rows(1000, 50, 3) != validation_rows(1000, 50, 4)
