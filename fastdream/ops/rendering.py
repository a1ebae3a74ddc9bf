"""Placeholder: the rendering ops land here."""
__all__: list[str] = []
