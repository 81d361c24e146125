"""Diagnostics: adjusted mutual information between semantic IDs, contact sheets."""
