"""Segmentation backends: anything that turns an RGB image into instance masks."""
from .base import Segmentation, SegmentationBackend

__all__ = ['Segmentation', 'SegmentationBackend']
