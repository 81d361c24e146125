"""Token layouts of semantic IDs and the tokenize stage. A new layout is a `Layout` in
the registry `LAYOUTS` (mgr_cli.tokens.layout); a plugin file adds one with
`register_layout`."""

from mgr_cli.tokens.layout import LAYOUTS, Layout, register_layout

__all__ = ["LAYOUTS", "Layout", "register_layout"]
