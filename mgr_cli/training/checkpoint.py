"""The resumable training state, in files that cannot carry code.

    checkpoint/model.safetensors   the model's weights (tied embeddings once)
    checkpoint/state.safetensors   every tensor of the optimiser state and the RNG states
    checkpoint/state.json          the rest: optimiser hyper-parameters, scheduler, step,
                                   data position, best so far, the training config and
                                   which trainer wrote it (t5 or sasrec)

No pickle anywhere: a checkpoint someone sends you is read as numbers and JSON, never
executed. A checkpoint in the older pickle format (`state.pt`) is refused, not loaded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from mgr_cli.artifacts.replace import replace_atomically
from mgr_cli.errors import MgrError

TIED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")


def rng_state() -> dict:
    """This process's random generators: torch (CPU, CUDA), numpy, python."""
    np_state = np.random.get_state()
    py_version, py_words, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"words": np_state[1], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                       "gauss": float(np_state[4])},
             "python": {"version": py_version, "words": list(py_words), "gauss": py_gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", np.asarray(n["words"], dtype=np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["words"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _split(rngs: list[dict], opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors out into a flat dict for safetensors; everything else stays JSON."""
    tensors: dict[str, torch.Tensor] = {}
    rng_json = []
    for r, s in enumerate(rngs):
        tensors[f"rng.{r}.torch"] = s["torch"]
        tensors[f"rng.{r}.numpy"] = torch.from_numpy(np.asarray(s["numpy"]["words"]).astype(np.int64))
        for d, c in enumerate(s.get("cuda", [])):
            tensors[f"rng.{r}.cuda.{d}"] = c
        rng_json.append({"numpy": {k: v for k, v in s["numpy"].items() if k != "words"},
                         "python": s["python"], "cuda_devices": len(s.get("cuda", []))})
    opt_json: dict = {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, entries in opt_state["state"].items():
        opt_json["state"][str(pid)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value.detach().cpu().contiguous()
                opt_json["state"][str(pid)][key] = "tensor"
            else:
                opt_json["state"][str(pid)][key] = value
    return tensors, {"rng": rng_json, "optimizer": opt_json}


def save(ckpt: Path, model, opt, sched, state: dict, rngs: list[dict], config: dict, *,
         trainer: str = "t5") -> None:
    """Write `ckpt` whole or not at all (a temporary folder renamed into place). `sched`
    may be None (a trainer without a learning-rate schedule)."""
    from safetensors.torch import save_file

    tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()
                   if k not in TIED or not tied}, tmp / "model.safetensors")
        tensors, rest = _split(rngs, opt.state_dict())
        save_file(tensors, tmp / "state.safetensors")
        doc = {"format": "mgr-checkpoint", "version": 1, "trainer": trainer, "state": state,
               "scheduler": sched.state_dict() if sched is not None else None,
               "config": config, **rest}
        (tmp / "state.json").write_text(json.dumps(doc))

    ckpt.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(ckpt, write)


def exists(ckpt: Path) -> bool:
    return (ckpt / "state.json").exists() or (ckpt / "state.pt").exists()


def load(ckpt: Path, device: torch.device) -> dict:
    """Read a checkpoint written by `save`: {"model", "optimizer", "scheduler", "state",
    "rngs", "config"} with tensors where `save` had them."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if (ckpt / "state.pt").exists() and not (ckpt / "state.json").exists():
        raise MgrError(f"{ckpt}: a checkpoint in the old pickle format (state.pt), which mgr no "
                       "longer loads because a pickle can run code; start a new run (--force)")
    try:
        doc = json.loads((ckpt / "state.json").read_text())
        tensors = load_file(ckpt / "state.safetensors")
        weights = load_file(ckpt / "model.safetensors", device=str(device))
    except (OSError, ValueError, SafetensorError) as e:
        raise MgrError(f"{ckpt}: damaged checkpoint ({str(e).splitlines()[0][:120]}); "
                       "start a new run (--force)") from None
    if not isinstance(doc, dict) or doc.get("format") != "mgr-checkpoint":
        raise MgrError(f"{ckpt}/state.json: not an mgr checkpoint; start a new run (--force)")
    try:
        opt = {"param_groups": doc["optimizer"]["param_groups"], "state": {}}
        for group in opt["param_groups"]:
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
        for pid, entries in doc["optimizer"]["state"].items():
            opt["state"][int(pid)] = {k: tensors[f"opt.{pid}.{k}"] if v == "tensor" else v
                                      for k, v in entries.items()}
        rngs = []
        for r, s in enumerate(doc["rng"]):
            rngs.append({"torch": tensors[f"rng.{r}.torch"],
                         "numpy": {**s["numpy"], "words": tensors[f"rng.{r}.numpy"].numpy()},
                         "python": s["python"],
                         **({"cuda": [tensors[f"rng.{r}.cuda.{d}"] for d in range(s["cuda_devices"])]}
                            if s["cuda_devices"] else {})})
    except (KeyError, TypeError, ValueError) as e:
        raise MgrError(f"{ckpt}: damaged checkpoint (missing {e}); start a new run (--force)") from None
    return {"model": weights, "optimizer": opt, "scheduler": doc["scheduler"], "state": doc["state"],
            "rngs": rngs, "config": doc.get("config", {}), "trainer": doc.get("trainer", "t5")}


def changed_options(saved: dict, now: dict) -> str:
    """The training options a resume would change, as `--name old -> new` (the device may
    differ: a run started on one GPU may go on on another)."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    a, b = flat(saved), flat(now)
    diff = [f"--{k.split('.')[-1].replace('_', '-')} {a.get(k)} -> {b.get(k)}"
            for k in sorted(set(a) | set(b)) if k != "device" and a.get(k) != b.get(k)]
    return ", ".join(diff)
