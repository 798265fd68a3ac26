"""Reading weight files from a local folder: safetensors (single or sharded), pickles only on request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import torch
from safetensors import safe_open

from .errors import CheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


def _index_files(folder: Path, index_name: str) -> list[Path]:
    index = folder / index_name
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"cannot read shard index {index}: {e}") from None
    files = sorted({folder / name for name in weight_map.values()})
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{index.name} lists {len(missing)} shard(s) that are not in {folder}: {', '.join(missing[:5])}")
    return files


def weight_files(folder: Path, allow_pickle: bool = False) -> list[Path]:
    """The weight files of ``folder``; pickles are refused unless ``allow_pickle``."""
    if (folder / "model.safetensors.index.json").is_file():
        return _index_files(folder, "model.safetensors.index.json")
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
    if pickles:
        if not allow_pickle:
            raise CheckpointError(
                f"{folder} holds only pickle weights ({', '.join(p.name for p in pickles[:3])}); loading a pickle can "
                "run code. Convert them to safetensors, or pass allow_pickle=True (CLI: --allow-pickle) to load "
                "them with torch.load(weights_only=True)")
        if (folder / "pytorch_model.bin.index.json").is_file():
            return _index_files(folder, "pytorch_model.bin.index.json")
        return pickles
    raise CheckpointError(f"no weights in {folder}: expected *.safetensors (or model.safetensors.index.json)")


def iter_tensors(files: list[Path]) -> Iterator[tuple[str, Path, torch.Tensor]]:
    """Yield ``(name, file, tensor)`` for every tensor in ``files``."""
    for path in files:
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), framework="pt") as f:
                    for name in f.keys():
                        yield name, path, f.get_tensor(name)
            except (OSError, ValueError, RuntimeError) as e:
                raise CheckpointError(f"cannot read weights file {path}: {str(e).splitlines()[0]}") from None
            except Exception as e:  # safetensors raises its own SafetensorError
                if type(e).__name__ != "SafetensorError":
                    raise
                raise CheckpointError(f"cannot read weights file {path}: {e}") from None
        else:
            try:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as e:  # weights_only refusals surface as UnpicklingError/RuntimeError
                raise CheckpointError(f"torch.load(weights_only=True) refused {path}: {str(e).splitlines()[0]}") from None
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise CheckpointError(f"{path} is not a flat dict of tensors")
            for name, tensor in state.items():
                yield name, path, tensor
