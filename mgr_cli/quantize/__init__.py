"""Semantic IDs from embeddings: RQ-VAE (TIGER), residual k-means, import/export.

A new method is a `Method` in the registry `METHODS` (see `mgr_cli.quantize.methods`);
a plugin file adds one with `register_method`."""

from mgr_cli.quantize.methods import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]
