"""The pipeline: whole files and datasets in, normalized files out."""

from .dataset import normalize_dataset

__all__ = ["normalize_dataset"]
