"""Offline image datasets: ``load(name, split)`` from tfds, Debian, shipped or bundled files."""

from vograd.tasks.datasets.dataset import Dataset
from vograd.tasks.datasets.loader import KNOWN_NAMES, SOURCES, DatasetUnavailableError, load
from vograd.tasks.datasets.sources import SourceUnavailable

__all__ = [
    "KNOWN_NAMES",
    "SOURCES",
    "Dataset",
    "DatasetUnavailableError",
    "SourceUnavailable",
    "load",
]
