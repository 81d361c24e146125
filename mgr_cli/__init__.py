"""mgr: multimodal generative recommendation (MGR-LF++) as composable stages.

The package imports without the command line: `mgr_cli.artifacts` reads and writes
the versioned artifacts every stage exchanges, `mgr_cli.data` turns raw data into a
dataset artifact. The `mgr` command (`mgr_cli.cli`) is a thin layer on top.

No network: importing the package sets Hugging Face hub access offline
(HF_HUB_OFFLINE=1) unless MGR_ALLOW_DOWNLOAD=1; the command line imports it first.
"""

import os

if not os.environ.get("MGR_ALLOW_DOWNLOAD"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"
