"""The sequence-to-sequence recommender: a transformers T5, sized by flags.

Default: TIGER's size (4 encoder + 4 decoder layers, d_model 128, 6 heads of 64,
d_ff 1024, dropout 0.1). Or initialised from a local pretrained T5 directory (its
embeddings resized to our vocabulary), or from a previous `align`/`train` run.

Encoder input (`--encoder-input`):
    tokens  TIGER's: every semantic-ID token of the history is one encoder position
    items   one encoder position per history item: the sum of its tokens' embeddings
            (the same shared table), and one for </s>. The decoder and its output are
            TIGER's; the encoder runs over ~1/L of the positions (L tokens per item).
The choice is saved in the model's config (`mgr_item_width`: tokens per item, 0 for
tokens), so evaluation, `recommend` and `--init` read it back from the model.
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
    encoder_input: str = "tokens"

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


ENCODER_INPUTS = ("tokens", "items")


def item_width(model) -> int:
    """Tokens per history item that the encoder sums into one position; 0: one per token."""
    return int(getattr(model.config, "mgr_item_width", 0) or 0)


def set_item_width(model, width: int) -> None:
    model.config.mgr_item_width = int(width)


def item_inputs(embed, input_ids, attention_mask, width: int):
    """Sources of whole items ([B, S]: n items of `width` tokens, </s>, padding) as one
    position per item: (inputs_embeds [B, ceil(S / width), d], attention_mask). The
    </s> after n items is position n (its group holds </s> and padding only)."""
    import torch.nn.functional as F

    b, s = input_ids.shape
    extra = -s % width
    if extra:
        input_ids = F.pad(input_ids, (0, extra), value=PAD)
        attention_mask = F.pad(attention_mask, (0, extra), value=0)
    x = embed(input_ids) * attention_mask[..., None].to(embed.weight.dtype)
    x = x.view(b, -1, width, x.shape[-1]).sum(2)
    return x, attention_mask.view(b, -1, width).amax(2)
