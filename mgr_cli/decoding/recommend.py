"""`recommend`: a trained run answers requests, a user's history in, top-K items out.

A request is a user's history of item ids, oldest first. Its source tokens are built
exactly as tokenize and evaluate build them: the items as catalogue indices, the last
`max_history` kept, left-padded with -1 into one history row, then `Tokenized.source`.
The items come from the same constrained beam search as `mgr evaluate` (`decode_batch`
over the prefix tree), so a test user's history gives that user's evaluated list.

Requests are answered in batches, in input order, as they arrive: memory does not grow
with the number of users. Input lines are JSON objects (`{"user": ..., "history": [...]}`)
or whitespace-separated item ids; each line is read as one or the other on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from mgr_cli.errors import MgrError

UNKNOWN = ("error", "skip")
SHOWN = 3  # unknown ids named in an error


@dataclass
class Request:
    user: Any
    history: list[str]
    where: str = ""  # "input line 3": where an error points


@dataclass
class Counts:
    """What a `recommend` call met, for the summary on stderr."""

    users: int = 0
    unknown_ids: int = 0  # dropped under unknown="skip"
    unknown_users: int = 0
    empty: int = 0  # answered from an empty history (unknown="skip")
    short: int = 0  # fewer than k items left (exclude_history, or a small catalogue)
    beams: int = 0  # the beam width used
    examples: list[str] = field(default_factory=list)  # a few of the dropped ids


def parse_line(text: str, number: int) -> Request | None:
    """One input line (1-based `number`) as a request; None for a blank line. A line
    starting with `{` is a JSON object with a "history" list (and optionally a "user",
    echoed back as given); any other line is whitespace-separated item ids. A request
    without a user is named by its 0-based line index."""
    s = text.strip()
    if not s:
        return None
    where = f"input line {number}"
    if not s.startswith("{"):
        return Request(number - 1, s.split(), where)
    try:
        obj = json.loads(s)
    except json.JSONDecodeError as e:
        raise MgrError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); give "
                       '{"user": ..., "history": [item ids]} or item ids separated by spaces') from None
    except (ValueError, RecursionError) as e:  # nested too deep, an integer too long
        raise MgrError(f"{where}: not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(obj, dict):
        raise MgrError(f"{where}: a JSON line must be an object with a \"history\" list")
    hist = obj.get("history")
    if not isinstance(hist, list):
        raise MgrError(f'{where}: needs "history": a list of item ids')
    bad = [h for h in hist if isinstance(h, bool) or not isinstance(h, (str, int))]
    if bad:
        raise MgrError(f"{where}: item ids are strings (or integers), got {json.dumps(bad[0])}")
    return Request(obj.get("user", number - 1), [str(h) for h in hist], where)


def read_requests(lines: Iterable[bytes | str]) -> Iterator[Request]:
    """The requests of an input stream, lazily (one line read per request, so an
    interactive stream is answered as it is typed). Bytes lines must be UTF-8."""
    for number, raw in enumerate(lines, 1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise MgrError(f"input line {number}: not UTF-8 text") from None
        req = parse_line(raw, number)
        if req is not None:
            yield req


class Recommender:
    """A model and its tokenized artifact, ready to answer: the prefix tree, the decoder,
    the catalogue's item ids and their indices."""

    def __init__(self, model, tok, *, item_ids: list[str] | None = None,
                 modalities: list[str] | None = None, device=None, workers: int | None = None):
        from mgr_cli.decoding.rank import check_workers, item_tree
        from mgr_cli.decoding.t5step import T5Decoder

        check_workers(workers)
        if item_ids is None:
            item_ids = catalogue_ids(tok)
        if len(item_ids) != len(tok.items):
            raise MgrError(f"{tok.path}: {len(tok.items)} items, but {len(item_ids)} item ids were given")
        self.model, self.tok, self.item_ids = model.eval(), tok, item_ids
        self.index = {i: n for n, i in enumerate(item_ids)}
        self.device = device if device is not None else next(model.parameters()).device
        self.workers = workers
        self.max_history = int(tok.header["meta"]["max_history"])
        tree, self.modalities = item_tree(tok, modalities)
        self.tree = tree.to(self.device)
        self.decoder = T5Decoder(model, self.tree.depth + 1)

    def source(self, items: Sequence[int]) -> np.ndarray:
        """Item indices (oldest first) as the model's source tokens, as tokenize makes them."""
        row = np.full(self.max_history, -1, dtype=np.int32)
        kept = list(items)[-self.max_history:]
        if kept:
            row[self.max_history - len(kept):] = kept
        return self.tok.source(row)

    def indices(self, req: Request, unknown: str, counts: Counts) -> list[int]:
        known = [self.index.get(h) for h in req.history]
        missing = [h for h, i in zip(req.history, known) if i is None]
        if missing:
            if unknown == "error":
                shown = ", ".join(repr(m) for m in missing[:SHOWN]) + (", ..." if len(missing) > SHOWN else "")
                raise MgrError(f"{req.where}: {len(missing)} unknown item id{'s' if len(missing) > 1 else ''} "
                               f"({shown}) not in the catalogue of {self.tok.path}; pass --unknown skip "
                               "to drop them")
            counts.unknown_ids += len(missing)
            counts.unknown_users += 1
            counts.examples += missing[:SHOWN - len(counts.examples)]
        items = [i for i in known if i is not None]
        if not items:
            if unknown == "error":
                raise MgrError(f"{req.where}: the history is empty; pass --unknown skip to answer it "
                               "from no history (the model's items for anybody)")
            counts.empty += 1
        return items

    def beam_width(self, k: int, beams: int, exclude_history: bool) -> int:
        """`beams`, or with exclude_history at least k + max_history: room for k items
        besides the (kept part of the) history."""
        return max(beams, k + self.max_history) if exclude_history else beams

    def recommend(self, requests: Iterable[Request | Sequence[str]], *, k: int = 10, beams: int = 20,
                  batch_size: int = 64, exclude_history: bool = False, unknown: str = "error",
                  counts: Counts | None = None) -> Iterator[dict]:
        """{"user", "items", "scores"} per request, in order; scores are the model's
        log-probabilities of the items' token sequences. A plain sequence of item ids is a
        request named by its position. With exclude_history the history's items are left
        out, and the beam width is at least k + max_history so that k items usually remain
        (fewer when the catalogue, or a history longer than max_history, leaves fewer;
        counted in `counts.short`). If a request is bad, the requests before it are
        answered, then the error is raised."""
        from mgr_cli.decoding.rank import DecodeThreads, decode_batch, default_workers

        if k < 1 or beams < 1 or batch_size < 1:
            raise MgrError("--top-k, --beams and --batch-size must be at least 1")
        if unknown not in UNKNOWN:
            raise MgrError(f"--unknown must be error or skip, got {unknown!r}")
        counts = counts if counts is not None else Counts()
        width = self.beam_width(k, beams, exclude_history)
        counts.beams = width
        workers = self.workers or default_workers(batch_size, self.device)
        with DecodeThreads(workers if self.device.type == "cpu" else 1) as threads:
            prepared = self._prepared(requests, unknown, counts, exclude_history)
            for batch, error in _batches(prepared, batch_size):
                if batch:
                    order = sorted(range(len(batch)), key=lambda r: len(batch[r][1]))  # less padding
                    extra = max(len(batch[r][2]) for r in order)
                    ranked = decode_batch(self.decoder, self.tree, [batch[r][1] for r in order],
                                          beams=width, k=k + extra, device=self.device, threads=threads)
                    results = dict(zip(order, ranked))
                    for r, (req, _, skip) in enumerate(batch):
                        items, scores = results[r]
                        if skip:
                            pairs = [(i, s) for i, s in zip(items, scores) if i not in skip]
                            items, scores = [i for i, _ in pairs], [s for _, s in pairs]
                        items, scores = items[:k], scores[:k]
                        counts.users += 1
                        counts.short += len(items) < k
                        yield {"user": req.user, "items": [self.item_ids[i] for i in items],
                               "scores": scores}
                if error is not None:
                    raise error

    def _prepared(self, requests, unknown: str, counts: Counts,
                  exclude_history: bool) -> Iterator[tuple[Request, np.ndarray, set]]:
        """(request, source tokens, items to leave out) for each request, lazily."""
        for n, req in enumerate(requests):
            if not isinstance(req, Request):
                if isinstance(req, (str, bytes)):
                    raise MgrError(f"request {n + 1}: a history is a list of item ids, not a string")
                req = Request(n, [str(h) for h in req], f"request {n + 1}")
            items = self.indices(req, unknown, counts)
            yield req, self.source(items), set(items) if exclude_history else set()


def _batches(items: Iterator, size: int) -> Iterator[tuple[list, MgrError | None]]:
    """Up to `size` items at a time; an MgrError while filling a batch ends the stream
    after the items before it (the error comes with them)."""
    batch: list = []
    while True:
        try:
            x = next(items)
        except StopIteration:
            if batch:
                yield batch, None
            return
        except MgrError as e:
            yield batch, e
            return
        batch.append(x)
        if len(batch) == size:
            yield batch, None
            batch = []


def catalogue_ids(tok) -> list[str]:
    """The item ids of the dataset the tokenized artifact descends from, in item order,
    checked against the item order it was tokenized with."""
    from mgr_cli.data.dataset import ids_hash
    from mgr_cli.decoding.evaluate import _ids_of_dataset

    item_ids, _ = _ids_of_dataset(tok)
    if ids_hash(item_ids) != tok.header["meta"]["item_ids_hash"]:
        raise MgrError(f"{tok.path}: the dataset it was made from now holds other items; "
                       "tokenize it again")
    return item_ids


def recommend(model, tok, histories: Iterable[Request | Sequence[str]], *, k: int = 10,
              beams: int = 20, batch_size: int = 64, exclude_history: bool = False,
              unknown: str = "error", modalities: list[str] | None = None, device=None,
              workers: int | None = None, item_ids: list[str] | None = None,
              counts: Counts | None = None) -> Iterator[dict]:
    """Top-k items for each history (a `Request`, or a sequence of item ids), lazily:

        for r in recommend(model, Tokenized.load(path), [["a", "b"], ["c"]], k=5):
            print(r["user"], r["items"])

    See `Recommender.recommend`; `item_ids` defaults to the ids of the dataset the
    tokenized artifact descends from."""
    rec = Recommender(model, tok, item_ids=item_ids, modalities=modalities, device=device,
                      workers=workers)
    return rec.recommend(histories, k=k, beams=beams, batch_size=batch_size,
                         exclude_history=exclude_history, unknown=unknown, counts=counts)
