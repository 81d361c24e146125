"""Semantic IDs from embeddings: RQ-VAE (TIGER), residual k-means, import/export."""
