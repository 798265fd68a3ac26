"""A tied table stored once (``export --shared-table``): model.pte + model.ptd, parity through the
runtime and the C++ runner given the data file, and the table's bytes in one file only."""

import json
import shutil

import pytest
import torch

from sfllava_mobile import ConfigError
from sfllava_mobile.cli import main
from sfllava_mobile.export.config import ExecuTorchOptions, ExportConfig
from sfllava_mobile.export.parity import verify_bundle
from sfllava_mobile.manifest import read_manifest

from ..conftest import assert_bundle_matches_schema

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def shared(tiny15_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("shared") / "b"
    code = main(["-q", "export", "--checkpoint", str(tiny15_dir), "--quant", "8da4w-awq-h8", "--shared-table",
                 "--out", str(out)])  # verify on: parity against the eager twin, runner included
    assert code == 0
    return out


def test_the_table_is_stored_once(shared, tiny15_dir):
    from sfllava_mobile import load

    m = read_manifest(shared)
    assert m.executorch.data == "model.ptd" and m.artifacts["data"] == "model.ptd"
    assert m.size.total_bytes >= (shared / "model.pte").stat().st_size + (shared / "model.ptd").stat().st_size
    assert_bundle_matches_schema(shared)
    text = load(tiny15_dir).config.text
    # The int8 rows the embedding reads are the head's: they are in the data file, and not in the program.
    from sfllava_mobile.export.executorch import eager_twin

    table = eager_twin(load(tiny15_dir), m, shared).token_embedding.embed.shared_table_qdata
    assert tuple(table.shape) == (text.vocab_size, text.hidden_size)
    probe = table[1:9].contiguous().numpy().tobytes()  # 8 rows: far too long to occur by chance
    assert probe in (shared / "model.ptd").read_bytes() and probe not in (shared / "model.pte").read_bytes()
    rows = {r.component: r for r in m.quantization.coverage}
    assert rows["embedding"].scheme == "int8-shared-with-lm_head" and rows["embedding"].bits_per_weight == 0.0


def test_parity_and_runner_pass_with_the_data_file(shared):
    report = json.loads((shared / "parity.json").read_text())
    assert report["pass"] and report["checks"]["runner"]["text_equal"]
    assert report["vs_eager_recipe"]["token_embedding"]["max_abs"] == 0.0  # the very bytes the eager twin reads


def test_a_missing_data_file_is_one_clear_error(shared, tmp_path, capsys):
    b = tmp_path / "b"
    shutil.copytree(shared, b)
    (b / "model.ptd").unlink()
    assert main(["-q", "verify", str(b), "--cases", "1", "--steps", "2"]) != 0
    err = capsys.readouterr().err
    assert "model.ptd" in err and "Traceback" not in err


def test_a_corrupted_table_fails_parity(shared, tiny15_dir, tmp_path):
    """The runtime must read the table from the data file: negate its rows there and parity fails."""
    from sfllava_mobile import load
    from sfllava_mobile.export.executorch import eager_twin

    b = tmp_path / "b"
    shutil.copytree(shared, b)
    table = eager_twin(load(tiny15_dir), read_manifest(b), b).token_embedding.embed.shared_table_qdata
    data = bytearray((b / "model.ptd").read_bytes())
    at = bytes(data).index(table.contiguous().numpy().tobytes())
    n = table.numel()
    data[at:at + n] = (-table.flatten().to(torch.int16)).clamp(-128, 127).to(torch.int8).numpy().tobytes()
    (b / "model.ptd").write_bytes(bytes(data))
    report = verify_bundle(b, cases=1, steps=4)
    assert not report["pass"] and not report["vs_eager_recipe"]["token_embedding"]["pass"]


def test_shared_table_is_validated(tiny15_dir, layout_checkpoint, tmp_path, capsys):
    with pytest.raises(ConfigError, match="use --quant 8da4w-awq-h8"):
        ExportConfig(quant="8da4w-awq", options=ExecuTorchOptions(shared_table=True))
    code = main(["-q", "export", "--checkpoint", str(layout_checkpoint("llava_repo")), "--quant", "8da4w-awq-h8",
                 "--shared-table", "--frames", "4", "--no-verify", "--out", str(tmp_path / "v1")])
    assert code == 2 and "for tied decoders" in capsys.readouterr().err and not (tmp_path / "v1").exists()
    assert main(["-q", "export", "--checkpoint", str(tiny15_dir), "--backend", "coreml", "--shared-table",
                 "--out", str(tmp_path / "c")]) == 2
    assert "--shared-table is an option of --backend executorch" in capsys.readouterr().err
