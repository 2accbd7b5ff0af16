"""Interoperability: importers that turn standard interchange formats into the raw input contract."""
