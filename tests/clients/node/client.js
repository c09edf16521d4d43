// node memjs (binary protocol) against one server: prints one JSON object of
// what the client observed (tests/py/test_client_node.py).
// Usage: node client.js HOST:PORT stats|settings|items|reset|data
'use strict';
const memjs = require('memjs');

const [server, step] = process.argv.slice(2);
const quiet = { log: () => {} };
// 10 s: a timeout is recorded as what the client saw, and a loaded machine
// can hold one server's reply back for seconds while the other's came.
const mc = memjs.Client.create(server, { retries: 0, timeout: 10, conntimeout: 10, failover: false, logger: quiet });

function versionOk(v) {
  const m = typeof v === 'string' && /^(\d+)\.(\d+)\.(\d+)/.exec(v);
  return !!m && Number(m[1]) >= 1;
}

// statsWithKey calls back once per server: here one.
// memjs never calls back when the server hangs up instead: a timer says so.
function statsWithKey(key) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ error: 'no answer (connection closed?)' }), 3000);
    mc.statsWithKey(key, (err, srv, stats) => { clearTimeout(t); resolve(err ? { error: String(err.message || err) } : { stats }); });
  });
}

// A call's result, or what it failed with.
async function attempt(f) {
  try { return await f(); } catch (e) { return `error: ${e.message}`; }
}

async function main() {
  const out = {};
  if (step === 'stats') {
    await mc.set('stat_key', 'v'.repeat(100), {});
    const r = await statsWithKey('');
    const s = r.stats || {};
    out.error = r.error || null;
    out.fields = Object.fromEntries(['pid', 'uptime', 'version', 'curr_items', 'total_items', 'cmd_get', 'get_hits', 'threads', 'limit_maxbytes'].map((k) => [k, k in s]));
    out.version_ok = versionOk(s.version);
  } else if (step === 'settings' || step === 'items' || step === 'slabs') {
    await mc.set('stat_key', 'v'.repeat(100), {});
    const r = await statsWithKey(step);
    out.error = r.error || null;
    const keys = Object.keys(r.stats || {});
    out.nonempty = keys.length > 0;
    out.has = keys.filter((k) => /^(maxbytes|item_size_max|num_threads|items:\d+:number|\d+:chunk_size)$/.test(k)).sort();
    // The connection must still serve afterwards.
    out.then_get = await attempt(async () => String((await mc.get('stat_key')).value).length);
  } else if (step === 'reset') {
    await mc.get('nokey');
    const r = await new Promise((resolve) => {
      const t = setTimeout(() => resolve('no answer (connection closed?)'), 3000);
      mc.resetStats((err, srv) => { clearTimeout(t); resolve(err ? `error: ${err.message}` : srv === server); });
    });
    out.reset = r;
    const after = await statsWithKey('');
    out.after_reset_cmd_get = after.stats ? after.stats.cmd_get : after.error;
  } else {
    const ops = [];
    const rec = async (name, f) => { if (process.env.TRACE) console.error(name); ops.push([name, await attempt(f)]); if (process.env.TRACE) console.error(JSON.stringify(ops[ops.length - 1]).slice(0, 200)); };
    const val = (r) => (r.value === null ? null : r.value.toString());
    await rec('set', () => mc.set('k', 'v1', {}));
    await rec('get', async () => val(await mc.get('k')));
    await rec('add existing', () => mc.add('k', 'v2', {}));
    await rec('add new', () => mc.add('k2', 'a', {}));
    await rec('replace', () => mc.replace('k', 'v3', {}));
    await rec('replace missing', () => mc.replace('nokey', 'x', {}));
    await rec('append', () => mc.append('k', '-end'));
    await rec('prepend', () => mc.prepend('k', 'start-'));
    await rec('append missing', () => mc.append('nokey', 'x'));
    await rec('get', async () => val(await mc.get('k')));
    await rec('flags', async () => { await mc.set('f', 'x', {}); return (await mc.get('f')).flags.toString('hex'); });
    await rec('increment create', async () => (await mc.increment('n', 1, { initial: 10 })).value);
    await rec('increment', async () => (await mc.increment('n', 5, {})).value);
    await rec('decrement past 0', async () => (await mc.decrement('n', 100, {})).value);
    await rec('touch', () => mc.touch('k', 100));
    await rec('touch missing', () => mc.touch('nokey', 100));
    await rec('set expires 3600', () => mc.set('e', 'x', { expires: 3600 }));
    await rec('get expires 3600', async () => val(await mc.get('e')));
    await rec('delete', () => mc.delete('k'));
    await rec('delete again', () => mc.delete('k'));
    await rec('get deleted', async () => val(await mc.get('k')));
    await rec('big', async () => { await mc.set('big', 'b'.repeat(500000), {}); return (await mc.get('big')).value.length; });
    await rec('flush', async () => Object.values(await mc.flush()));
    await rec('get flushed', async () => val(await mc.get('k2')));
    out.ops = ops;
    if (ops[1][1] !== 'v1') { console.error('get after set:', ops[1][1]); process.exitCode = 1; }
  }
  console.log(JSON.stringify(out));
  mc.close();
}

main().catch((e) => { console.error(e); process.exit(1); });
