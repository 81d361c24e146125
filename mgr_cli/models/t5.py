"""The sequence-to-sequence recommender: a transformers T5, sized by flags.

Default: TIGER's size (4 encoder + 4 decoder layers, d_model 128, 6 heads of 64,
d_ff 1024, dropout 0.1). Or initialised from a local pretrained T5 directory (its
embeddings resized to our vocabulary), or from a previous `align`/`train` run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from mgr_cli.errors import MgrError
from mgr_cli.tokens.layout import EOS, PAD


@dataclass
class ModelConfig:
    layers: int = 4
    decoder_layers: int = 4
    d_model: int = 128
    heads: int = 6
    d_kv: int = 64
    d_ff: int = 1024
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def quiet_transformers() -> None:
    """No progress bars from transformers' loading and saving: ours go to stderr, once."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def build_model(vocab_size: int, cfg: ModelConfig):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff,
                      num_layers=cfg.layers, num_decoder_layers=cfg.decoder_layers,
                      num_heads=cfg.heads, dropout_rate=cfg.dropout, pad_token_id=PAD,
                      eos_token_id=EOS, decoder_start_token_id=PAD, feed_forward_proj="relu")
    return T5ForConditionalGeneration(config)


def load_pretrained_t5(path: Path, vocab_size: int):
    """A local pretrained T5 (e.g. t5-small) with its embeddings resized to our vocabulary."""
    from transformers import T5ForConditionalGeneration

    if not (path / "config.json").exists():
        raise MgrError(f"{path}: not a T5 model directory (no config.json)")
    model = T5ForConditionalGeneration.from_pretrained(path, local_files_only=True)
    model.resize_token_embeddings(vocab_size)
    model.config.pad_token_id, model.config.eos_token_id = PAD, EOS
    model.config.decoder_start_token_id = PAD
    return model
