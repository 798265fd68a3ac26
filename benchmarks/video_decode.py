"""read_clip on a long high-resolution clip vs decoding and converting every frame.

Writes a synthetic clip (default 10 min of 1080p at 30 fps, x264 ultrafast, 2 s GOP), then times
``read_clip(path, 128)`` against a baseline that decodes every frame and converts each to RGB.
Prints JSON. Usage: python benchmarks/video_decode.py [--minutes M] [--height H] [--frames T]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from sfllava_mobile.video import read_clip


def write_long_clip(path: Path, seconds: float, height: int, width: int, fps: int, gop: int) -> int:
    n = int(seconds * fps)
    base = np.zeros((height, width, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]
    side = height // 6
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt, s.time_base = width, height, "yuv420p", Fraction(1, fps)
        s.codec_context.gop_size = gop
        for t in range(n):
            img = base.copy()
            x0 = (t * 7) % (width - side)
            img[height // 3: height // 3 + side, x0: x0 + side] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return n


def decode_all(path: Path) -> int:
    n = 0
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        for f in c.decode(video=0):
            f.to_ndarray(format="rgb24")
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--skip-baseline", action="store_true")
    a = ap.parse_args()
    width = a.height * 16 // 9
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "long.mp4"
        t0 = time.perf_counter()
        n = write_long_clip(path, a.minutes * 60, a.height, width, a.fps, gop=2 * a.fps)
        enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        clip = read_clip(path, a.frames, "uniform", resize_to=(384, 384))
        ours = time.perf_counter() - t0
        rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # includes the encoding above
        base = None
        if not a.skip_baseline:
            t0 = time.perf_counter()
            decode_all(path)
            base = time.perf_counter() - t0
        print(json.dumps({
            "clip": f"{a.minutes} min {width}x{a.height} @ {a.fps} fps, {n} frames, GOP {2 * a.fps}",
            "file_mb": round(path.stat().st_size / 1e6, 1), "encode_s": round(enc, 1),
            "read_clip_frames": len(clip.indices), "read_clip_resized_to": [384, 384], "read_clip_s": round(ours, 2),
            "peak_rss_mb_after_read_clip": round(rss_ours),
            "decode_and_convert_all_s": None if base is None else round(base, 2),
            "speedup": None if base is None else round(base / ours, 1),
        }, indent=2))


if __name__ == "__main__":
    main()
