"""Placeholder: the encoding ops land here."""
__all__: list[str] = []
