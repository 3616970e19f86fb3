"""leastpriv: watch a program run and learn the least privilege it needs."""

__version__ = "0.1.0"
