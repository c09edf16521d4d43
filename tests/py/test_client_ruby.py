"""Ruby dalli (Debian's ruby-dalli, binary protocol): version, stats,
stats(:items/:slabs/:settings), reset_stats and the data calls, each
against memcached and corecache."""
import pytest

from matrix import kinds, run_json, same_as_memcached


def ruby(step):
    return lambda srv: run_json(["ruby", "ruby/client.rb", f"127.0.0.1:{srv.port}", step])


@pytest.mark.parametrize("kind", kinds())
def test_version(matrix, kind):
    assert same_as_memcached(matrix, kind, ruby("version"))["version_ok"]


@pytest.mark.parametrize("kind", kinds())
def test_stats(matrix, kind):
    out = same_as_memcached(matrix, kind, ruby("stats"))
    assert out["general_version_ok"] and all(out["general"].values())




@pytest.mark.parametrize("kind,group", [
    ("memcached", "items"), ("memcached", "slabs"), ("memcached", "settings"),
    ("corecache", "items"), ("corecache", "slabs"),
    ("corecache", "settings"),
])
def test_stats_group(matrix, kind, group):
    out = same_as_memcached(matrix, kind, ruby(group))
    assert out["stats"]["nonempty"] and out["then_get"] == 100


@pytest.mark.parametrize("kind", kinds())
def test_reset_stats(matrix, kind):
    out = same_as_memcached(matrix, kind, ruby("reset_stats"))
    assert out["reset_stats"] == [True] and out["after_reset_cmd_get"] == "0"


@pytest.mark.parametrize("kind", kinds())
def test_data_calls(matrix, kind):
    out = same_as_memcached(matrix, kind, ruby("data"))
    assert ["incr", 15] in out["ops"]
