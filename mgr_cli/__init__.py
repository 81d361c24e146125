"""mgr: multimodal generative recommendation (MGR-LF++) as composable stages.

The package imports without the command line: `mgr_cli.artifacts` reads and writes
the versioned artifacts every stage exchanges, `mgr_cli.data` turns raw data into a
dataset artifact. The `mgr` command (`mgr_cli.cli`) is a thin layer on top.
"""

__version__ = "0.1.0"
