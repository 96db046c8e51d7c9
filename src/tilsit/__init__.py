"""tilsit: a Python package index that an organisation runs itself."""

__version__ = "0.1.0.dev0"
