"""php-memcached (libmemcached underneath), text and binary protocol:
getVersion, getStats (general, settings, items, slabs), getAllKeys and
the data calls, each against memcached and corecache."""
import pytest

from matrix import kinds, run_json, same_as_memcached


def php(step, proto):
    return lambda srv: run_json(["php", "php/client.php", "127.0.0.1", str(srv.port), proto, step])


@pytest.mark.parametrize("proto", ["text", "binary"])
@pytest.mark.parametrize("kind", kinds())
def test_get_version(matrix, kind, proto):
    out = same_as_memcached(matrix, kind, php("version", proto))
    assert out["parses"]


@pytest.mark.parametrize("proto", ["text", "binary"])
@pytest.mark.parametrize("kind", kinds())
def test_get_stats(matrix, kind, proto):
    out = same_as_memcached(matrix, kind, php("stats", proto))
    assert out["general"]["has_entry"] and out["general"]["version_ok"]


@pytest.mark.parametrize("kind", kinds())
def test_get_all_keys_text(matrix, kind):
    out = same_as_memcached(matrix, kind, php("allkeys", "text"))
    assert out["keys"] == ["ak1", "ak2", "ak3", "ak4"]


@pytest.mark.parametrize("kind", kinds())
def test_get_all_keys_binary_unsupported(matrix, kind):
    # libmemcached dumps keys over text only: NOT_SUPPORTED (28) from both.
    out = same_as_memcached(matrix, kind, php("allkeys", "binary"))
    assert out["keys"] is False and out["rc"] == 28


@pytest.mark.parametrize("proto", ["text", "binary"])
@pytest.mark.parametrize("kind", kinds())
def test_data_calls(matrix, kind, proto):
    out = same_as_memcached(matrix, kind, php("data", proto))
    assert out["ops"][1] == ["get", "v1", 0]
