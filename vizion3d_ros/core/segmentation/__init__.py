"""Segmentation backends: anything that turns an RGB image into instance masks."""
from .base import Segmentation, SegmentationBackend
from .external import ExternalMasksBackend

__all__ = ['ExternalMasksBackend', 'Segmentation', 'SegmentationBackend']
