"""Labelling projects: the SQLite store, the browser labelling app and the query cycle."""

from medactive.annotate.store import (
    SCHEMA_VERSION,
    Answer,
    ImageRow,
    ProjectStore,
    QueueItem,
    RoundRow,
)

__all__ = ["SCHEMA_VERSION", "Answer", "ImageRow", "ProjectStore", "QueueItem", "RoundRow"]
