"""Datasets: readers for raw formats, the paper's protocol, the dataset artifact, the demo."""

from mgr_cli.data.dataset import Dataset, Example, Item, load_dataset, save_dataset
from mgr_cli.data.protocol import PrepareConfig, apply_protocol

__all__ = ["Dataset", "Example", "Item", "load_dataset", "save_dataset", "PrepareConfig",
           "apply_protocol"]
