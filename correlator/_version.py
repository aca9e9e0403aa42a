"""The package's version: the one place it is written (pyproject.toml reads it from here, through
hatchling), so reports name it without importing importlib.metadata at every start."""

__version__ = "0.1.0"
