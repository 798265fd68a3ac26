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
