"""Constrained beam search: mgr's decoding loop against transformers' generate
(num_beams=20, prefix_allowed_tokens_fn) on the same model, checkpoint and users.

    .venv/bin/python bench/beam_search.py                      # TIGER-size T5, demo LF++ tokens
    .venv/bin/python bench/beam_search.py --run build/demo/runs/mgr-lfpp --tokenized build/demo/tok/mgr-lfpp.safetensors

Checks that both return the same top-20 items (up to ties) and prints users/second of
each; the last line is the speed-up (target >= 10x on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from mgr_cli.decoding.beam import PrefixTree
from mgr_cli.decoding.rank import DecodeThreads, decode_batch, default_workers
from mgr_cli.decoding.t5step import T5Decoder
from mgr_cli.models.t5 import ModelConfig, build_model
from mgr_cli.tokens.layout import EOS, PAD
from mgr_cli.tokens.stage import Tokenized
from mgr_cli.training.data import pad


def hf_rankings(model, tok: Tokenized, ids, beams: int):
    trie: dict[tuple, list[int]] = {}
    leaf: dict[tuple, int] = {}
    for i, seq in enumerate(tok.items.tolist()):
        for t in range(len(seq)):
            trie.setdefault(tuple(seq[:t]), set()).add(seq[t])
        trie.setdefault(tuple(seq), set()).add(EOS)
        leaf[tuple(seq)] = i
    trie = {k: sorted(v) for k, v in trie.items()}

    def allowed(_, prefix):
        key = tuple(prefix.tolist()[1:])
        return trie.get(key, [PAD])

    out = model.generate(input_ids=ids, attention_mask=(ids != 0).long(), num_beams=beams,
                         num_return_sequences=beams, max_new_tokens=tok.items.shape[1] + 1,
                         prefix_allowed_tokens_fn=allowed, do_sample=False, early_stopping=True,
                         length_penalty=0.0, output_scores=True, return_dict_in_generate=True)
    seqs = out.sequences[:, 1:1 + tok.items.shape[1]].tolist()
    scores = out.sequences_scores.view(len(ids), beams).tolist()
    items = [leaf.get(tuple(s), -1) for s in seqs]
    return [(items[u * beams:(u + 1) * beams], scores[u]) for u in range(len(ids))]


def same_up_to_ties(a, sa, b, sb, tol=1e-3) -> bool:
    if len(a) != len(b):
        return False
    for x, y, p, q in zip(a, b, sa, sb):
        if x != y and abs(p - q) > tol:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokenized", default="build/demo/tok/mgr-lfpp.safetensors")
    ap.add_argument("--run", help="a trained run folder (default: TIGER-size T5, random weights)")
    ap.add_argument("--users", type=int, default=128)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64, help="users decoded together (mgr evaluate's default)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each; the best counts")
    args = ap.parse_args()
    torch.manual_seed(0)
    tok = Tokenized.load(args.tokenized)
    if args.run:
        from transformers import T5ForConditionalGeneration

        model = T5ForConditionalGeneration.from_pretrained(f"{args.run}/model")
    else:
        model = build_model(tok.header["meta"]["vocab_size"], ModelConfig())
    model.eval()
    hist = tok.tensors["test_history"][: args.users]
    srcs = sorted((tok.source(h) for h in hist), key=len)  # the batches mgr evaluate forms, for both
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"{len(tok.items)} items x {tok.items.shape[1]} tokens ({tok.header['meta']['layout']}), "
          f"{len(srcs)} users, {args.beams} beams, model {'trained' if args.run else 'TIGER-size, random'}")
    tree = PrefixTree.build(tok.items)
    dec = T5Decoder(model, tree.depth + 1)

    cpu = torch.device("cpu")
    workers = default_workers(args.batch_size, cpu)  # what mgr evaluate uses

    def run_ours(threads=None):
        out = []
        for s in range(0, len(srcs), args.batch_size):
            out += decode_batch(dec, tree, srcs[s:s + args.batch_size], beams=args.beams, k=args.beams,
                                device=cpu, threads=threads)
        return out

    def run_theirs():
        out = []
        with torch.no_grad():
            for s in range(0, len(srcs), args.batch_size):
                out += hf_rankings(model, tok, pad(srcs[s:s + args.batch_size], 0), args.beams)
        return out

    def timed(fn):
        start = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - start

    # warm-up (one batch each: lazy initialisation, allocator), then the best of
    # --repeats alternating runs of each, so all see the same machine state. mgr runs as
    # `mgr evaluate` does (the batch split between `workers` decoding threads) and, for
    # reference, as one search on all intra-op threads.
    warm = pad(srcs[:args.batch_size], 0)
    with DecodeThreads(workers) as threads:
        decode_batch(dec, tree, srcs[:args.batch_size], beams=args.beams, k=args.beams, device=cpu, threads=threads)
    run_ours()
    with torch.no_grad():
        hf_rankings(model, tok, warm, args.beams)
    t_ours = t_one = t_hf = float("inf")
    for r in range(args.repeats):
        with DecodeThreads(workers) as threads:
            ours, t_o = timed(lambda: run_ours(threads))
        one, t_1 = timed(run_ours)
        theirs, t_h = timed(run_theirs)
        t_ours, t_one, t_hf = min(t_ours, t_o), min(t_one, t_1), min(t_hf, t_h)
        print(f"repeat {r + 1}: generate {t_h:.2f} s, mgr {t_o:.2f} s ({workers} decoding threads), "
              f"{t_1:.2f} s (one search)", flush=True)
    same = sum(same_up_to_ties(a[0], a[1], b[0], b[1]) for a, b in zip(ours, one))
    diff = max(abs(x - y) for a, b in zip(ours, one) for x, y in zip(a[1], b[1]))
    print(f"mgr with {workers} decoding threads vs one search: identical lists for {same}/{len(srcs)} users "
          f"(scores differ by at most {diff:.1e})")
    agree = sum(same_up_to_ties(a, sa, b, sb) for (a, sa), (b, sb) in zip(ours, theirs))
    top1 = sum(a[0] == b[0] for (a, _), (b, _) in zip(ours, theirs))
    print(f"identical top-{args.beams} lists (up to ties): {agree}/{len(srcs)} users; same top-1: {top1}/{len(srcs)}")
    print(f"transformers generate: {len(srcs) / t_hf:8.1f} users/s (best {t_hf:.2f} s of {args.repeats})")
    print(f"mgr, one search:       {len(srcs) / t_one:8.1f} users/s (best {t_one:.2f} s of {args.repeats}; "
          f"{t_hf / t_one:.1f}x generate)")
    print(f"mgr beam search:       {len(srcs) / t_ours:8.1f} users/s (best {t_ours:.2f} s of {args.repeats}; "
          f"{workers} decoding threads, as mgr evaluate)")
    print(f"speed-up of mgr's constrained beam search over generate: {t_hf / t_ours:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
