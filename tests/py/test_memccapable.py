"""libmemcached-tools' memccapable: every ASCII and binary test."""
import shutil
import subprocess

import pytest


@pytest.mark.parametrize("mode", ["-a", "-b"])
def test_memccapable(server, mode):
    tool = shutil.which("memccapable") or shutil.which("memcapable")
    assert tool, "memccapable is installed by .ci/run (libmemcached-tools)"
    r = subprocess.run([tool, "-h", "127.0.0.1", "-p", str(server.port), mode], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "All tests passed" in out
    assert "[FAIL]" not in out
