import json

import pytest

from sfllava_mobile.cli import main
from sfllava_mobile.export.config import ExportConfig
from sfllava_mobile.export import export

pytestmark = pytest.mark.filterwarnings("ignore")


def test_bench_all_engines_json_and_plot(tiny15_dir, clip_path, tmp_path, capsys):
    from sfllava_mobile import load

    export(load(tiny15_dir), tmp_path / "b", ExportConfig(quant="8da4w"), source=tiny15_dir)
    png = tmp_path / "bench.png"
    assert main(["-q", "bench", str(tmp_path / "b"), "--video", str(clip_path), "--steps", "4", "--json",
                 "--plot", str(png)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["engines"]) == {"pte", "runner", "eager"}
    for name in ("pte", "eager"):
        e = r["engines"][name]
        assert e["decode_tokens_per_second"] > 0 and e["prefill_tokens_per_second"] > 0 and e["peak_rss_mb"] > 50
        assert e["prompt_tokens"] == r["engines"]["pte"]["prompt_tokens"] > r["visual_tokens"]
    assert r["artifact_vs_eager"]["decode_tokens_per_second"] > 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["-q", "bench", str(tmp_path / "b"), "--video", str(tmp_path / "none.mp4")]) == 2
