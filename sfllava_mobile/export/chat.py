"""A conversation over an exported bundle, whatever its backend: the artifact runs through its
backend's driver (the same call sequence parity and the apps use)."""

from __future__ import annotations

from pathlib import Path

from sfllava_mobile import bundle as bundle_mod
from sfllava_mobile.config import ModelConfig
from sfllava_mobile.conversation import Conversation
from sfllava_mobile.tokenizer import Tokenizer

from . import backend as backends


def open_bundle(bundle: str | Path, max_new_tokens: int | None = None) -> Conversation:
    """A :class:`~sfllava_mobile.conversation.Conversation` over the bundle's artifact, with the
    bundle's context length and answer budget (``max_new_tokens`` overrides the latter)."""
    bundle = Path(bundle)
    manifest = bundle_mod.read_manifest(bundle)
    driver = backends.get(manifest.backend).driver(bundle, manifest)
    return Conversation(driver, ModelConfig.from_dict(manifest.model.config), Tokenizer.from_folder(bundle),
                        manifest.context.max_context_len,
                        manifest.context.max_new_tokens if max_new_tokens is None else max_new_tokens)
