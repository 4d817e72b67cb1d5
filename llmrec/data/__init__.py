"""Canonical records, loaders for the supported formats, and splits."""

from llmrec.data.records import DEFAULT_BEHAVIOR, Example, Interaction, Item, RecDataset, Split

__all__ = ["DEFAULT_BEHAVIOR", "Example", "Interaction", "Item", "RecDataset", "Split"]
