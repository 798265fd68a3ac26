import pytest

from sfllava_mobile.errors import SfllavaError
from sfllava_mobile.fsutil import atomic_dir, atomic_file


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "bundle"
    with atomic_dir(out) as d:
        (d / "a").write_text("1")
    assert (out / "a").read_text() == "1"
    with pytest.raises(SfllavaError, match="already exists"):
        with atomic_dir(out):
            pass
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True) as d:
            (d / "a").write_text("2")
            raise RuntimeError("export failed")
    assert (out / "a").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["bundle"]


@pytest.mark.parametrize("dangling", [False, True])
def test_atomic_dir_follows_a_symlinked_target(tmp_path, dangling):
    real = tmp_path / "cache" / "bundle"
    real.mkdir(parents=True)
    (real / "old").write_text("x")
    if dangling:
        (real / "old").unlink()
        real.rmdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_dir(link, overwrite=True) as d:
        (d / "new").write_text("y")
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == ["new"]
    assert (real / "new").read_text() == "y"


def test_atomic_file(tmp_path):
    out = tmp_path / "r.json"
    with atomic_file(out) as t:
        t.write_text("{}")
    assert out.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
