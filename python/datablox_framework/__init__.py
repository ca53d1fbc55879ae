"""Datablox framework: blocks, the block loader, an in-process runtime and the node caretaker.

A computation is a graph of blocks. Each block is a small Python package under BLOXPATH
(`<module>__<version>/b_<module>.py`) defining a subclass of `datablox_framework.block.Block`.
"""

__version__ = "1.0"
