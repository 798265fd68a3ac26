import copy
import json

import pytest

from sfllava_mobile.cli import main
from sfllava_mobile.devices import (BASES, DEVICES_FILE, EFFICIENCY_FILE, format_devices, get_device, load_devices,
                                    load_efficiency)
from sfllava_mobile.errors import SfllavaError


def test_table_loads_and_every_figure_has_a_source():
    devices = load_devices()
    assert len(devices) >= 6
    assert {d.os for d in devices} == {"ios", "android"}
    for d in devices:
        for key, f in d.figures().items():
            assert f.basis in BASES, (d.id, key)
            assert len(f.source) >= 10, (d.id, key)
            if f.basis != "quoted" and f.value is not None:
                assert f.derivation.strip(), (d.id, key)
        assert d.app_usable_memory_gb.value < d.ram_gb.value
        # Figures computed from other figures are labelled as such, never passed off as quoted.
        for key in ("app_usable_memory_gb", "memory_bandwidth_gbs", "cpu_int8_tops", "cpu_fp32_tflops"):
            assert getattr(d, key).basis != "quoted", (d.id, key)
        assert "npu" in d.npu_tops.source.lower() and "not used" in d.npu_tops.source
        # How the usable memory was derived is stated: the iOS entitlement, or Android's half-of-RAM rule.
        rule = "increased-memory-limit" if d.os == "ios" else "half of RAM"
        assert rule in d.app_usable_memory_gb.derivation, d.id


def _write(tmp_path, data, name="devices.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["cpu_int8_tops"].update(value=d["cpu_int8_tops"]["value"] * 2), "cpu_int8_tops"),
    (lambda d: d["dram"].update(mt_per_s=6400), "memory_bandwidth_gbs"),
    (lambda d: d["ram_gb"].update(source=""), "needs a source"),
    (lambda d: d["memory_bandwidth_gbs"].update(derivation=""), "needs its derivation"),
    (lambda d: d["app_usable_memory_gb"].update(basis="measured"), "basis must be"),
    (lambda d: d.update(id="iPhone 16 Pro"), "lowercase slug"),
])
def test_bad_table_is_a_one_line_error(tmp_path, edit, message):
    data = json.loads(DEVICES_FILE.read_text())
    bad = copy.deepcopy(data)
    edit(bad["devices"][0])
    with pytest.raises(SfllavaError, match=message) as e:
        load_devices(_write(tmp_path, bad))
    assert "\n" not in str(e.value)
    load_devices(_write(tmp_path, data, "good.json"))  # the untouched copy loads


def test_get_device_by_id_or_name():
    assert get_device("iPhone 16 Pro").id == "iphone-16-pro"
    assert get_device("PIXEL-9-PRO").soc == "Google Tensor G4"
    with pytest.raises(SfllavaError) as e:
        get_device("nokia-3310")
    msg = str(e.value)
    assert "\n" not in msg and "nokia-3310" in msg
    assert all(d.id in msg for d in load_devices())


def test_efficiency_file_and_a_replacement(tmp_path):
    eff = load_efficiency()
    for f in (eff.decode, eff.vision, eff.prefill):
        assert 0 < f.value <= 1 and f.source.strip()
    assert "executorch_llm" in eff.decode.source and "1.04 s/frame" in eff.vision.source
    data = json.loads(EFFICIENCY_FILE.read_text())
    data["factors"]["decode_bandwidth_fraction"]["value"] = 0.5
    data["date"] = "2027-01-01"
    new = load_efficiency(_write(tmp_path, data, "eff.json"))
    assert new.decode.value == 0.5 and new.date == "2027-01-01" and new.vision.value == eff.vision.value
    data["factors"]["vision_int8_fraction"]["value"] = 1.5
    with pytest.raises(SfllavaError, match="above 1"):
        load_efficiency(_write(tmp_path, data, "eff2.json"))
    data["factors"]["vision_int8_fraction"]["value"] = 0.6
    del data["factors"]["prefill_int8_fraction"]
    with pytest.raises(SfllavaError, match="prefill_int8_fraction missing"):
        load_efficiency(_write(tmp_path, data, "eff3.json"))
    with pytest.raises(SfllavaError, match="does not exist"):
        load_efficiency(tmp_path / "nope.json")


def test_device_list_cli(capsys):
    assert main(["plan", "--device", "list"]) == 0
    out = capsys.readouterr().out
    assert all(d.id in out for d in load_devices()) and "not measurements" in out
    assert out.strip() == format_devices(load_devices()).strip()
    assert main(["plan", "--device", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["ram_gb"]["source"] and rows[0]["cpu_int8_tops"]["estimate"] is True


def test_unknown_device_cli_is_one_line_and_exit_2(capsys):
    assert main(["plan", "--preset", "sf-llava-1.5-1b", "--device", "nokia-3310"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown device 'nokia-3310'") and "iphone-16-pro" in err
    assert main(["plan", "--preset", "tiny", "--efficiency", "x.json"]) == 2
    assert "goes with --device" in capsys.readouterr().err
