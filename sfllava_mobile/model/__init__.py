"""The PyTorch reference model: vision tower, projector, decoder, assembled as VideoLLM."""

from .projector import Projector
from .video_llm import VideoLLM
from .vision import VisionTower

__all__ = ["Projector", "VideoLLM", "VisionTower"]
