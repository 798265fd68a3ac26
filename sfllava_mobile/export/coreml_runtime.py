"""Running a Core ML bundle through the call sequence an app makes (``coreml.CALL_SEQUENCE``):
on Linux by evaluating the saved MIL programs with numpy (:class:`MilDriver`), on macOS with
Core ML itself (:class:`PredictDriver`). Both feed the decoder in ``prefill_chunk`` rows while that
many remain and one row at a time after, carrying the KV state between calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sfllava_mobile.manifest import Manifest


class _Sequence:
    """The decoder call sequence over two callables: ``_call(function, embeds[1,S,H] fp16, pos) -> logits``."""

    def __init__(self, manifest: Manifest):
        self.chunk = manifest.context.prefill_chunk
        self.max_seq_len = manifest.context.max_seq_len

    def decode(self, embeds: torch.Tensor, pos: int) -> torch.Tensor:
        x = embeds.to(torch.float16).numpy()
        i, logits = 0, None
        while i < x.shape[1]:
            fn, n = ("prefill", self.chunk) if x.shape[1] - i >= self.chunk else ("decode", 1)
            logits = self._call(fn, x[:, i:i + n], pos + i)
            i += n
        return torch.from_numpy(np.asarray(logits, np.float32)).reshape(1, -1)

    def decode_all(self, embeds: torch.Tensor, pos: int) -> torch.Tensor:
        x = embeds.to(torch.float16).numpy()
        rows = [np.asarray(self._call("decode", x[:, i:i + 1], pos + i), np.float32).reshape(1, -1)
                for i in range(x.shape[1])]
        return torch.from_numpy(np.concatenate(rows))

    def embed(self, ids: list[int]) -> torch.Tensor:
        n = self.max_seq_len
        parts = [self._embed(np.array([ids[i:i + n]], np.int32)) for i in range(0, len(ids), n)]
        return torch.from_numpy(np.concatenate([np.asarray(p, np.float32) for p in parts], axis=1))

    def vision(self, image: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self._vision(image.to(torch.float16).numpy()), np.float32))

    def rewind(self, pos: int) -> None:
        pass  # positions decide what is read; later rows are overwritten before they are attended


class MilDriver(_Sequence):
    """The packages' MIL programs evaluated with numpy: the program's semantics, not Apple's kernels."""

    name = "coreml"
    engine = "the Core ML packages' MIL programs evaluated with numpy on this host (semantics, not Apple's kernels)"

    def __init__(self, bundle: Path, manifest: Manifest):
        from .mil_eval import MilInterpreter

        super().__init__(manifest)
        pk = manifest.coreml.packages
        self._vis = MilInterpreter(str(bundle / pk["vision_encoder"]))
        self._emb = MilInterpreter(str(bundle / pk["token_embedding"]))
        self._fns = {"decode": MilInterpreter(str(bundle / pk["text_decoder"]), function="decode")}
        self._fns["prefill"] = self._fns["decode"].with_function("prefill")  # one state dict for both

    def reset(self) -> None:
        self._fns["decode"].reset_states()

    def _call(self, fn: str, x: np.ndarray, pos: int):
        return self._fns[fn].predict({"inputs_embeds": x, "input_pos": np.array([pos], np.int32)})["logits"]

    def _embed(self, ids: np.ndarray):
        return self._emb.predict({"ids": ids})["embeddings"]

    def _vision(self, image: np.ndarray):
        return self._vis.predict({"image": image})["visual_rows"]


class PredictDriver(_Sequence):  # pragma: no cover - needs macOS (Core ML runs only on Apple platforms)
    """Core ML itself through ``MLModel.predict``, one ``MLState`` shared by prefill and decode."""

    name = "coreml"
    engine = "Core ML (MLModel.predict on this Mac)"

    def __init__(self, bundle: Path, manifest: Manifest):
        import coremltools as ct

        super().__init__(manifest)
        pk = manifest.coreml.packages
        self._vis = ct.models.MLModel(str(bundle / pk["vision_encoder"]))
        self._emb = ct.models.MLModel(str(bundle / pk["token_embedding"]))
        self._fns = {fn: ct.models.MLModel(str(bundle / pk["text_decoder"]), function_name=fn)
                     for fn in ("prefill", "decode")}
        self.state = None
        self.reset()

    def reset(self) -> None:
        self.state = self._fns["decode"].make_state()

    def _call(self, fn: str, x: np.ndarray, pos: int):
        out = self._fns[fn].predict({"inputs_embeds": x, "input_pos": np.array([pos], np.int32)}, state=self.state)
        return out["logits"]

    def _embed(self, ids: np.ndarray):
        return self._emb.predict({"ids": ids})["embeddings"]

    def _vision(self, image: np.ndarray):
        return self._vis.predict({"image": image})["visual_rows"]
