"""Semantic IDs from embeddings: RQ-VAE (TIGER), LETTER, residual and hierarchical k-means;
the semantic-ID artifact's writer and reader, and plain imports and exports."""

from mgr_cli.quantize.ids import load_ids, save_ids, view_path

__all__ = ["load_ids", "save_ids", "view_path"]
