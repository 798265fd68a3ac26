"""The kernel contract: the manifest lists the operator libraries a program needs, and loading
without them fails with one line naming the library (not ``error: 0x14``)."""

import json
import subprocess
import sys

import pytest

from sfllava_mobile.export import kernels

pytestmark = pytest.mark.filterwarnings("ignore")


def test_manifest_lists_the_libraries_the_program_needs(exported_bundle):
    e = exported_bundle("ours", "8da4w")
    ops = kernels.program_operators(e.bundle / "model.pte")
    assert "llama::custom_sdpa.out" in ops["text_decoder"]["operators"]
    assert "llama::update_cache.out" in ops["text_decoder"]["operators"]
    assert "quantized_decomposed::embedding_4bit.out" in ops["token_embedding"]["operators"]
    assert "XnnpackBackend" in ops["text_decoder"]["delegates"]
    m = json.loads((e.bundle / "manifest.json").read_text())
    libs = {lib["name"]: lib for lib in m["executorch"]["kernel_libraries"]}
    assert m["executorch"]["kernel_libraries"] == kernels.required_libraries(ops)  # read back from the file = export time
    assert libs["llm_custom_ops"]["ios"] == "kernels_llm" and libs["llm_custom_ops"]["methods"] == ["text_decoder"]
    assert libs["quantized_ops"]["python"] == "executorch.kernels.quantized"
    assert libs["quantized_ops"]["operators"] == ["quantized_decomposed::embedding_4bit.out"]
    assert libs["xnnpack"]["ios"] == "backend_xnnpack"
    assert not [n for n in libs if n.startswith("unknown")]


def test_float_bundle_needs_no_quantized_kernels(exported_bundle):
    m = json.loads((exported_bundle("ours", "none").bundle / "manifest.json").read_text())
    assert {lib["name"] for lib in m["executorch"]["kernel_libraries"]} == {"aten_kernels", "prim_ops", "xnnpack", "llm_custom_ops"}


def test_unknown_namespace_is_listed_not_dropped():
    rows = kernels.required_libraries({"forward": {"operators": ["mylib::fancy.out", "aten::add.out"], "delegates": []}})
    assert [r["name"] for r in rows] == ["aten_kernels", "unknown:mylib"]
    assert rows[1]["operators"] == ["mylib::fancy.out"] and rows[1]["ios"] is None


_LOAD_WITHOUT_LIBRARIES = """
import sys
from sfllava_mobile.errors import SfllavaError
import sfllava_mobile.export.kernels as k
k.register_all = lambda: None          # as an app that links no LLM / quantized kernels
if sys.argv[2] == "runtime":           # skip the preflight: the runtime's own 0x14 path
    k.missing_operators = lambda pte: {}
try:
    k.load_program(sys.argv[1], ("token_embedding", "text_decoder"))
except SfllavaError as e:
    print("ERROR", e)
"""


@pytest.mark.parametrize("path", ["preflight", "runtime"])
def test_missing_library_is_one_line_naming_it(exported_bundle, path):
    pte = exported_bundle("ours", "8da4w").bundle / "model.pte"
    out = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_LIBRARIES, str(pte), path], capture_output=True,
                         text=True, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1, out.stdout + out.stderr
    msg = lines[0]
    assert "0x14" not in msg and "Traceback" not in out.stderr
    if path == "preflight":  # every missing operator of the program, with its library
        assert "llama::custom_sdpa.out" in msg and "kernels_llm" in msg
        assert "quantized_decomposed::embedding_4bit.out" in msg and "executorch.kernels.quantized" in msg
    else:  # the first method that fails to load: token_embedding's 4-bit embedding
        assert "token_embedding" in msg and "quantized_decomposed::embedding_4bit.out (quantized_ops" in msg
