"""Core ML decoder packaging: one multifunction package (``prefill`` of ``chunk`` rows + ``decode``
of one row, weights shared) vs one function with enumerated input shapes vs one function with a
range dimension. Same int4 quantization plan for all three; reports package bytes, weight.bin
bytes, conversion seconds and the functions each exposes. Usage:

    python benchmarks/coreml_decoder_layout.py --checkpoint DIR [--chunk 64] [--out results/coreml_decoder_layout.jsonl]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _bytes(pkg: Path) -> tuple[int, int]:
    total = sum(p.stat().st_size for p in pkg.rglob("*") if p.is_file())
    return total, (pkg / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").stat().st_size


def main() -> None:
    import coremltools as ct

    from sfllava_mobile import load
    from sfllava_mobile.export import coreml as cm, coreml_ops
    from sfllava_mobile.log import configure
    from sfllava_mobile.quantize import coreml as cq, recipes

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--max-context", type=int, default=512)
    ap.add_argument("--out")
    a = ap.parse_args()
    configure(-1)
    coreml_ops.register()
    model = load(a.checkpoint)
    hidden = model.config.text.hidden_size
    progs = cm.prepare_programs(model, 4, a.max_context, copy_weights=False)
    dec = progs.text_decoder
    names = cq.constant_names(dec)
    recipe = recipes.get("int4", "coreml")
    seq = torch.export.Dim("seq", min=1, max=a.max_context - 1)
    with torch.no_grad():
        ep = torch.export.export(dec, (torch.zeros(1, 2, hidden), torch.tensor([0])), dynamic_shapes=({1: seq}, None),
                                 strict=False).run_decompositions({})
    common = dict(outputs=[ct.TensorType(name="logits")], skip_model_load=True,
                  minimum_deployment_target=ct.target.iOS18, compute_precision=ct.precision.FLOAT16)
    pos = ct.TensorType(name="input_pos", shape=(1,), dtype=np.int32)
    variants = {
        "range_dim": [ct.TensorType(name="inputs_embeds", shape=(1, ct.RangeDim(1, a.max_context - 1), hidden)), pos],
        "enumerated": [ct.TensorType(name="inputs_embeds", shape=ct.EnumeratedShapes(
            shapes=[(1, a.chunk, hidden), (1, 1, hidden)], default=(1, 1, hidden))), pos],
        "multifunction": None,  # the dynamic conversion materialized into prefill + decode (what export ships)
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, inputs in variants.items():
            t0 = time.perf_counter()
            # fresh StateTypes per conversion: ct.convert renames the ones it is given
            ml = ct.convert(ep, inputs=inputs, states=cm._decoder_states(ep, dec), **common)
            cfg, _ = cq.plan(ml, recipe, lambda fqn: "decoder", names)
            ml = cq.apply(ml, cfg)
            folder = tmp / name
            folder.mkdir()
            if name == "multifunction":
                cm._split_decoder(ml, folder, a.chunk, hidden)
                pkg = folder / cm.PACKAGES["text_decoder"]
            else:
                pkg = folder / "text_decoder.mlpackage"
                ml.save(str(pkg))
            total, weights = _bytes(pkg)
            spec = ct.utils.load_spec(str(pkg))
            fns = [f.name for f in spec.description.functions] or ["main"]
            rows.append({"variant": name, "model": model.config.name, "layers": model.config.text.num_layers,
                         "hidden": hidden, "chunk": a.chunk, "package_bytes": total, "weight_bin_bytes": weights,
                         "program_bytes": total - weights, "functions": fns,
                         "convert_quantize_save_s": round(time.perf_counter() - t0, 1)})
            print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(folder)
    if a.out:
        with open(a.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
