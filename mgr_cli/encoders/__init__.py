"""Encoders for item text and images, and the embedding stage built on them.

Downloads are off: `mgr_cli` sets Hugging Face hub access offline on import unless
MGR_ALLOW_DOWNLOAD=1, so a missing model fails at once with a clear message instead of
retrying a network that is not there.
"""

from mgr_cli.encoders.artifact import load_embeddings, save_embeddings

__all__ = ["load_embeddings", "save_embeddings"]
