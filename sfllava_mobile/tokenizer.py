"""A thin wrapper over a local ``tokenizer.json`` (HF tokenizers); nothing is fetched."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer

from .errors import CheckpointError


class Tokenizer:
    """Encode text without adding special tokens; decode ids, optionally skipping special ones."""

    def __init__(self, backend: _HFTokenizer, path: Path | None = None):
        self.backend = backend
        self.path = path

    @classmethod
    def from_file(cls, path: str | Path) -> "Tokenizer":
        path = Path(path)
        try:
            return cls(_HFTokenizer.from_file(str(path)), path)
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise CheckpointError(f"cannot read tokenizer {path}: {str(e).splitlines()[0]}") from None

    @classmethod
    def from_folder(cls, folder: str | Path) -> "Tokenizer":
        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            hint = (" (found tokenizer.model: convert it once with transformers, "
                    "AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR), which writes tokenizer.json)"
                    if (folder / "tokenizer.model").is_file() else "")
            raise CheckpointError(f"no tokenizer.json in {folder}{hint}")
        return cls.from_file(path)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def save(self, path: str | Path) -> None:
        self.backend.save(str(path))

    def save_for_runner(self, path: str | Path, bos_id: int | None) -> None:
        """Save a copy whose post-processor prepends ``bos_id`` when asked for special tokens.

        ExecuTorch's C++ tokenizer adds BOS only through the post-processor (``encode(text, bos=1)``
        applies it), and Android's ``LlmModule`` can ask for BOS only that way (``numBos``, no token
        input). Our own encoding never adds special tokens, so this changes nothing on the Python side.
        """
        from tokenizers import Tokenizer as _T
        from tokenizers.processors import TemplateProcessing

        out = _T.from_str(self.backend.to_str())
        if bos_id is not None and out.encode("x", add_special_tokens=True).ids[:1] != [bos_id]:
            bos = out.id_to_token(bos_id)
            if bos is None:
                raise CheckpointError(f"bos_id {bos_id} is not in the tokenizer's vocabulary")
            out.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                                    special_tokens=[(bos, bos_id)])
        out.save(str(path))

    def config_for_apps(self, bos_id: int | None, eos_ids, max_length: int) -> dict:
        """``tokenizer_config.json`` for app-side tokenizers (swift-transformers' ``AutoTokenizer``
        needs a ``tokenizer_class``; ExecuTorch's C++ tokenizer reads BOS/EOS from it when given the
        folder): the checkpoint's class when it had a config next to ``tokenizer.json``."""
        import json

        cls = "PreTrainedTokenizerFast"
        src = self.path.parent / "tokenizer_config.json" if self.path is not None else None
        if src is not None and src.is_file():
            try:
                cls = json.loads(src.read_text()).get("tokenizer_class") or cls
            except ValueError:
                pass  # an unreadable config only costs the class name
        tok = self.backend
        return {"tokenizer_class": cls, "bos_token": None if bos_id is None else tok.id_to_token(bos_id),
                "eos_token": tok.id_to_token(list(eos_ids)[0]), "add_bos_token": False, "add_eos_token": False,
                "model_max_length": max_length, "clean_up_tokenization_spaces": False}
