"""Placeholder: PyTorch twins of the encoding ops land here."""
__all__: list[str] = []
