"""Synthetic test clips written with PyAV: a moving square over a gradient, deterministic."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from .fsutil import atomic_file


def synthetic_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """``[T, H, W, 3]`` uint8: a horizontal gradient and a white square crossing the frame."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                     np.full_like(x, 64)], axis=-1).astype(np.uint8)
    frames = np.repeat(base[None], num_frames, axis=0)
    side = max(2, min(height, width) // 4)
    for t in range(num_frames):
        x0 = (t * max(1, (width - side) // max(num_frames - 1, 1))) % max(width - side, 1)
        y0 = (height - side) // 2
        frames[t, y0:y0 + side, x0:x0 + side] = 255
    return frames


def write_clip(path: str | Path, num_frames: int = 48, size: tuple[int, int] = (96, 128), fps: int = 24,
               codec: str = "mpeg4", gop: int = 12, rotation: int = 0, frames: np.ndarray | None = None) -> Path:
    """Encode a clip (``size`` = (height, width)); ``rotation`` writes display-matrix metadata."""
    import av

    path = Path(path)
    frames = synthetic_frames(num_frames, *size) if frames is None else frames
    with atomic_file(path) as tmp:
        with av.open(str(tmp), mode="w", format=_format(path)) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, fps)
            stream.codec_context.gop_size = gop
            if rotation:
                stream.set_display_rotation(rotation)
            for img in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def _format(path: Path) -> str | None:
    return {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".avi": "avi", ".webm": "webm"}.get(path.suffix.lower())
