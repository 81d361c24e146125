"""Semantic IDs from embeddings: RQ-VAE (TIGER), LETTER, residual and hierarchical k-means;
the semantic-ID artifact's writer and reader, and plain imports and exports.

A new method is a `Method` in the registry `METHODS` (see `mgr_cli.quantize.methods`);
a plugin file adds one with `register_method`."""

from mgr_cli.quantize.ids import load_ids, save_ids, view_path
from mgr_cli.quantize.methods import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method", "load_ids", "save_ids", "view_path"]
