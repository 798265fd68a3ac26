"""Coverage rows: the summary counts and the weighted bits per weight."""

from sfllava_mobile.quantize.coverage import CoverageRow, format_rows, summary


def test_summary_weights_bits_by_parameter_count():
    rows = [CoverageRow("decoder", "a", "linear", (64, 64), "int4", 4, 32, 4.5),
            CoverageRow("vision", "fc2", "linear", (64, 136), "int8", 8, 0, 8 + 16 / 136, note="width 136"),
            CoverageRow("vision", "patch", "conv", (8, 3, 4, 4), "float", None, None, 16.0, note="kept"),
            CoverageRow("decoder", "rope", "table", (4, 8), "fp16", None, None, 16.0, note="not a linear")]
    s = summary(rows)
    n = [64 * 64, 64 * 136, 8 * 3 * 4 * 4, 4 * 8]
    assert s == {"layers": 4, "quantized": 2, "float": 2, "fallbacks": 1, "weights": sum(n),
                 "bits_per_weight": (n[0] * 4.5 + n[1] * (8 + 16 / 136) + (n[2] + n[3]) * 16.0) / sum(n)}
    assert rows[1].to_dict()["shape"] == [64, 136]
    text = format_rows(rows)
    assert "64x136" in text and "(width 136)" in text and text.count("\n") == 4


def test_empty_summary():
    assert summary([])["bits_per_weight"] == 0.0
