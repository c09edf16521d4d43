"""node memjs (binary protocol, installed by npm ci in tests/clients/node):
stats, statsWithKey('settings'/'items'/'slabs'), resetStats and the data
calls, each against memcached and corecache."""
import pytest

from matrix import kinds, run_json, same_as_memcached


def node(step):
    return lambda srv: run_json(["node", "node/client.js", f"127.0.0.1:{srv.port}", step])


@pytest.mark.parametrize("kind", kinds())
def test_stats(matrix, kind):
    out = same_as_memcached(matrix, kind, node("stats"))
    assert out["version_ok"] and all(out["fields"].values())




@pytest.mark.parametrize("kind,group", [
    ("memcached", "settings"), ("memcached", "items"), ("memcached", "slabs"), ("corecache", "settings"),
    ("corecache", "items"), ("corecache", "slabs"),
])
def test_stats_with_key(matrix, kind, group):
    out = same_as_memcached(matrix, kind, node(group))
    assert out["error"] is None and out["nonempty"] and out["then_get"] == 100


@pytest.mark.parametrize("kind", kinds())
def test_reset_stats(matrix, kind):
    out = same_as_memcached(matrix, kind, node("reset"))
    assert out == {"reset": True, "after_reset_cmd_get": "0"}


@pytest.mark.parametrize("kind", kinds())
def test_data_calls(matrix, kind):
    out = same_as_memcached(matrix, kind, node("data"))
    assert ["increment", 15] in out["ops"]
