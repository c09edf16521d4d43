"""Perl's Cache::Memcached (stats groups, data calls) and
Cache::Memcached::Fast (server_versions, data calls incl. cas, touch,
append), each against memcached and corecache."""
import pytest

from matrix import kinds, run_json, same_as_memcached


def perl(lib, step):
    return lambda srv: run_json(["perl", "perl/client.pl", f"127.0.0.1:{srv.port}", lib, step])


@pytest.mark.parametrize("kind", kinds())
def test_cache_memcached_stats(matrix, kind):
    out = same_as_memcached(matrix, kind, perl("cm", "stats"))
    assert out["version_ok"] and out["items_nonempty"]


@pytest.mark.parametrize("kind", kinds())
def test_cache_memcached_data(matrix, kind):
    out = same_as_memcached(matrix, kind, perl("cm", "data"))
    assert ["incr", "15"] in out["ops"]


@pytest.mark.parametrize("kind", kinds())
def test_cache_memcached_fast_version(matrix, kind):
    out = same_as_memcached(matrix, kind, perl("fast", "version"))
    assert out["version_ok"]


@pytest.mark.parametrize("kind", kinds())
def test_cache_memcached_fast_data(matrix, kind):
    out = same_as_memcached(matrix, kind, perl("fast", "data"))
    assert ["cas current", True] in out["ops"]
