"""A memcached client for the end-to-end tests: pymemcache, one command per
call, the answer as JSON on stdout.

    mc.py PORT set KEY VALUE [EXPTIME]   -> true
    mc.py PORT get KEY                   -> "value" or null
    mc.py PORT get_many KEY...           -> {"key": "value", ...} (found ones)
    mc.py PORT ttl KEY                   -> seconds left, -1 none, null missing (meta mg t)
    mc.py PORT set_many PREFIX N         -> true (PREFIX0..PREFIX{N-1} = "v")
    mc.py PORT set_hex KEYHEX VALUE      -> true (a key of any bytes, in hex)
    mc.py PORT get_hex KEYHEX            -> "value" or null
"""
import json
import sys

from pymemcache.client.base import Client


def main() -> None:
    port, op, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    c = Client(("127.0.0.1", port), connect_timeout=5, timeout=10)
    if op == "set":
        exp = int(args[2]) if len(args) > 2 else 0
        out = c.set(args[0], args[1].encode(), expire=exp, noreply=False)
    elif op == "get":
        v = c.get(args[0])
        out = None if v is None else v.decode()
    elif op == "get_many":
        out = {k: v.decode() for k, v in c.get_many(args).items()}
    elif op == "ttl":
        r = c.raw_command(f"mg {args[0]} t".encode(), b"\r\n").decode().split()
        out = None if r[0] == "EN" else int(r[1][1:])
    elif op == "set_many":
        prefix, n = args[0], int(args[1])
        c.set_many({f"{prefix}{i}": b"v" for i in range(n)}, noreply=False)
        out = True
    elif op == "set_hex":
        out = c.set(bytes.fromhex(args[0]), args[1].encode(), noreply=False)
    elif op == "get_hex":
        v = c.get(bytes.fromhex(args[0]))
        out = None if v is None else v.decode()
    else:
        raise SystemExit(f"unknown op {op}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
