"""vaultsched: a scheduler whose jobs are notes in an Obsidian vault."""

__version__ = "0.1.0"
