"""Host and phone bench reports in one table."""

from __future__ import annotations

import json

from sfllava_mobile.apps.bench_table import main


def test_table_puts_phone_and_host_engines_side_by_side(junit_run, tmp_path, capsys):
    _, phone = junit_run
    host = json.loads(phone.read_text())
    host["device"] = {"name": "ci-host", "os": "Linux"}
    host["engines"] = {"runner": {"time_to_first_token_s": 0.5, "decode_tokens_per_second": 40.0}}
    p = tmp_path / "host.json"
    p.write_text(json.dumps(host))
    assert main([str(phone), str(p)]) == 0
    out = capsys.readouterr().out
    assert "android_llmmodule@Pixel 9 Pro" in out and "runner@ci-host" in out
    row = next(line for line in out.splitlines() if line.startswith("decode_tokens_per_second"))
    assert row.split()[1:] == ["20.000", "40.000"]


def test_bad_reports_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"engines": {}}))
    assert main([str(bad)]) == 2 and "is not a bench report" in capsys.readouterr().err
    assert main([str(tmp_path / "none.json")]) == 2 and "no such report" in capsys.readouterr().err
    assert main([]) == 2
