"""Encoders for item text and images, and the embedding stage built on them.

Downloads are off: Hugging Face hub access is set offline unless MGR_ALLOW_DOWNLOAD=1,
so a missing model fails at once with a clear message instead of retrying a network
that is not there.
"""

import os

if not os.environ.get("MGR_ALLOW_DOWNLOAD"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
