"""Video front end: frame sampling, PyAV decoding, preprocessing. The apps port these rules.

Sampling (``sample_frame_indices``):
- ``segment_midpoint`` (SF-LLaVA v1): ``n = min(total, num_frames)``, ``seg = (total - 1) / n``,
  frame i = ``(round(seg*i) + round(seg*(i+1))) // 2`` with round-half-to-even on doubles.
- ``uniform`` (fixed count, exports): frame i = ``((2i + 1) * total) // (2 * num_frames)``, the
  middle of segment i in integer arithmetic; clips shorter than ``num_frames`` repeat frames.

Decoding (``read_clip``): the container is demuxed once without decoding to learn every frame's
timestamp and the keyframes; each sampled frame is then reached by seeking to the keyframe before
it (when that skips work) and decoding forward; only sampled frames are converted to RGB.
Rotation metadata is applied. A truncated file (demuxing stops with an error) is read up to its
last whole packet, with a warning; a file with no decodable frame is refused.

Preprocessing (``preprocess``): squash-resize to the model's frame size (:func:`resize_frames`,
whose float32 rule the Kotlin and Swift ports repeat bit for bit), then ``(x / 255 - mean) / std``.
Exports take the resized uint8 frames and normalize in-graph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import FRAME_RULES, ModelConfig
from .errors import VideoError

log = logging.getLogger(__name__)

MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192


def sample_frame_indices(total_frames: int, num_frames: int, rule: str) -> list[int]:
    """Indices of the frames to keep out of ``total_frames`` (see module docstring for the rules)."""
    if rule not in FRAME_RULES:
        raise VideoError(f"unknown frame sampling rule {rule!r}; use one of {FRAME_RULES}")
    if total_frames < 1:
        raise VideoError("the video has no frames to sample")
    if num_frames < 1:
        raise VideoError(f"num_frames must be >= 1, got {num_frames}")
    if rule == "segment_midpoint":
        n = min(total_frames, num_frames)
        seg = (total_frames - 1) / n
        return [(round(seg * i) + round(seg * (i + 1))) // 2 for i in range(n)]
    return [((2 * i + 1) * total_frames) // (2 * num_frames) for i in range(num_frames)]


@dataclass
class Clip:
    """Sampled frames ``[T, H, W, 3]`` uint8 (display orientation) and where they came from."""

    frames: torch.Tensor
    indices: list[int]
    total_frames: int
    fps: float
    rotation: int
    truncated: bool


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"no such video file: {path}")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise VideoError(f"{path} is not a media file PyAV can read ({e.strerror or type(e).__name__})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    return container


def _check_dims(path: Path, stream) -> None:
    w, h = stream.codec_context.width, stream.codec_context.height
    if w <= 0 or h <= 0 or w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise VideoError(f"{path} has absurd frame dimensions {w}x{h} "
                         f"(supported: sides up to {MAX_SIDE}, at most {MAX_PIXELS} pixels)")


def _declared_seconds(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:  # other streams may outlast the video
        return container.duration / 1e6
    return None


def _demux_index(container, stream) -> tuple[list[int], list[int], bool]:
    """(sorted frame pts, sorted keyframe pts, truncated) from packets alone, no decoding.

    Truncated: demuxing failed part-way (its last packet is dropped: it is usually cut), or the
    packets end more than two frame intervals before the duration the header declares.
    """
    import av

    pts, keys, failed = [], [], False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    except av.error.FFmpegError:
        failed = True
    if failed and pts:
        dropped = pts.pop()
        if keys and keys[-1] == dropped:
            keys.pop()
    truncated = failed
    declared, rate = _declared_seconds(container, stream), float(stream.average_rate or 0)
    if pts and declared and rate and stream.time_base:
        start = float((stream.start_time or 0) * stream.time_base)
        end = float(max(pts) * stream.time_base) - start + 1 / rate
        truncated = truncated or end < declared - 2 / rate
    return sorted(pts), sorted(keys), truncated


def _rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    # frame.rotation is the counter-clockwise angle the display matrix applies.
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def read_clip(path: str | Path, num_frames: int, rule: str = "uniform",
              resize_to: tuple[int, int] | None = None) -> Clip:
    """Decode ``num_frames`` frames of ``path`` chosen by ``rule``; raises :class:`VideoError` on bad input.

    ``resize_to`` (H, W) applies :func:`resize_frames` to each frame as it is decoded, so a long
    high-resolution clip never holds T full-size frames in memory (128 x 1080p RGB is 0.8 GB).
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        _check_dims(path, stream)
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        pts, keys, truncated = _demux_index(container, stream)
        if not pts:
            raise VideoError(f"{path} has a video stream but no decodable frames")
        if truncated:
            log.warning("%s is truncated: using its first %d whole frames", path, len(pts))
        indices = sample_frame_indices(len(pts), num_frames, rule)
        wanted = sorted(set(indices))
        stream.thread_type = "AUTO"
        got: dict[int, np.ndarray] = {}
        rotation = 0
        decoder, last_pts = None, None
        try:
            for i in wanted:
                target = pts[i]
                key = max((k for k in keys if k <= target), default=None)
                if decoder is None or last_pts is None or last_pts > target or (key is not None and last_pts < key):
                    container.seek(key if key is not None else target, stream=stream, backward=True, any_frame=False)
                    decoder = container.decode(stream)
                for frame in decoder:
                    if frame.pts is None:
                        continue
                    last_pts = frame.pts
                    if frame.pts >= target:
                        rotation = int(getattr(frame, "rotation", 0) or 0)
                        rgb = _rotate(frame.to_ndarray(format="rgb24"), rotation)
                        if resize_to is not None:
                            rgb = resize_frames(torch.from_numpy(rgb).unsqueeze(0), resize_to)[0].numpy()
                        got[i] = rgb
                        break
                if i not in got:
                    raise VideoError(f"{path}: frame {i} (of {len(pts)}) could not be decoded")
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed ({e.strerror or type(e).__name__})") from None
        frames = torch.from_numpy(np.stack([got[i] for i in indices]))
        return Clip(frames=frames, indices=indices, total_frames=len(pts), fps=fps, rotation=rotation,
                    truncated=truncated)
    finally:
        container.close()


def _as_uint8_frames(frames) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if t.dtype != torch.uint8 or t.dim() != 4 or t.shape[-1] != 3:
        raise VideoError(f"frames must be uint8 [T, H, W, 3], got {t.dtype} {tuple(t.shape)}")
    return t


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index along one axis: (i0, i1, w0, w1), every step a float32 operation (see resize_frames)."""
    f = np.float32
    scale = f(n_in) / f(n_out)
    src = np.maximum(scale * (np.arange(n_out, dtype=f) + f(0.5)) - f(0.5), f(0))
    i0 = np.floor(src).astype(np.int64)
    w1 = src - i0.astype(f)
    return i0, np.minimum(i0 + 1, n_in - 1), f(1) - w1, w1


def resize_frames(frames_uint8, size: tuple[int, int]) -> torch.Tensor:
    """Squash-resize ``[T, H, W, 3]`` uint8 to ``size`` (H, W): the project's bilinear rule.

    Per axis, in float32: ``scale = in / out``; ``src = max(scale * (d + 0.5) - 0.5, 0)``;
    ``i0 = floor(src)``, ``i1 = min(i0 + 1, in - 1)``, ``w1 = src - i0``, ``w0 = 1 - w1``. Per pixel,
    in float32 and in this order: ``top = p(y0,x0)*wx0 + p(y0,x1)*wx1``, ``bottom = p(y1,x0)*wx0 +
    p(y1,x1)*wx1``, ``v = top*wy0 + bottom*wy1``; the result is ``clamp(round_half_even(v), 0, 255)``.
    Half-pixel centres, no antialiasing (torch's ``bilinear, align_corners=False`` up to float
    rounding order). Written as explicit float32 steps so Kotlin/Swift ports match it exactly.
    """
    t = _as_uint8_frames(frames_uint8)
    if tuple(t.shape[1:3]) == tuple(size):
        return t
    x = t.numpy().astype(np.float32)
    y0, y1, wy0, wy1 = _axis(x.shape[1], size[0])
    x0, x1, wx0, wx1 = _axis(x.shape[2], size[1])
    wx0, wx1 = wx0[None, None, :, None], wx1[None, None, :, None]
    rows0, rows1 = x[:, y0], x[:, y1]
    top = rows0[:, :, x0] * wx0 + rows0[:, :, x1] * wx1
    bottom = rows1[:, :, x0] * wx0 + rows1[:, :, x1] * wx1
    v = top * wy0[None, :, None, None] + bottom * wy1[None, :, None, None]
    return torch.from_numpy(np.clip(np.rint(v), 0, 255).astype(np.uint8))


def tall_image(frames_uint8: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 (already resized) -> ``[1, 3, T*H, W]``: channel-planar, frames stacked
    along height; the layout ``vision_encoder`` takes and the apps' ``TallImage.pack`` writes."""
    t, h, w, _ = frames_uint8.shape
    return frames_uint8.permute(3, 0, 1, 2).reshape(1, 3, t * h, w).contiguous()


def normalize(frames_uint8, mean, std) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 -> ``[T, 3, H, W]`` float32, ``(x / 255 - mean) / std``."""
    t = _as_uint8_frames(frames_uint8)
    x = t.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def preprocess(frames_uint8, model_config: ModelConfig) -> torch.Tensor:
    """Resize to the model's frame size and normalize: ``[T, H, W, 3]`` uint8 -> ``[T, 3, H, W]`` float32."""
    v = model_config.vision
    return normalize(resize_frames(frames_uint8, v.image_size), v.image_mean, v.image_std)
