<?php
// php-memcached (libmemcached) against one server: prints one JSON object
// of what the client observed, for tests/py/test_client_php.py to compare
// between memcached and corecache.
// Usage: php client.php HOST PORT text|binary version|stats|allkeys|data
[$_, $host, $port, $proto, $step] = $argv;

$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, $proto === 'binary');
$m->setOption(Memcached::OPT_COMPRESSION, false);
// 10 s: a timeout is recorded as what the client saw, and a loaded machine
// can hold one server's reply back for seconds while the other's came.
$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 10000);
$m->setOption(Memcached::OPT_RECV_TIMEOUT, 10000000);
$m->setOption(Memcached::OPT_SEND_TIMEOUT, 10000000);
$m->addServer($host, (int)$port);
$srv = "$host:$port";
$out = [];

function rc($m) { return $m->getResultCode(); }

// A version as the client parsed it: dotted numbers with major >= 1.
function version_ok($v) {
    return is_string($v) && preg_match('/^(\d+)\.(\d+)\.(\d+)/', $v, $g) === 1 && (int)$g[1] >= 1;
}

switch ($step) {
case 'version':
    $v = $m->getVersion();
    $out['returned_array'] = is_array($v);
    $out['parses'] = is_array($v) && version_ok($v[$srv] ?? null);
    $out['rc'] = rc($m);
    break;

case 'stats':
    foreach (['' => 'general', 'settings' => 'settings', 'items' => 'items', 'slabs' => 'slabs'] as $arg => $name) {
        $m->set("stat_key", str_repeat('v', 100));
        $s = $arg === '' ? $m->getStats() : $m->getStats($arg);
        $entry = is_array($s) ? ($s[$srv] ?? null) : null;
        $o = ['rc' => rc($m), 'has_entry' => is_array($entry)];
        if ($name === 'general' && is_array($entry)) {
            foreach (['pid', 'uptime', 'time', 'version', 'curr_items', 'total_items', 'bytes', 'curr_connections',
                      'total_connections', 'cmd_get', 'cmd_set', 'get_hits', 'get_misses', 'evictions',
                      'limit_maxbytes', 'threads', 'bytes_read', 'bytes_written'] as $k) {
                $o['fields'][$k] = array_key_exists($k, $entry);
            }
            $o['version_ok'] = version_ok($entry['version'] ?? null);
            $o['curr_items'] = $entry['curr_items'] ?? null;
        } elseif ($name === 'settings' && is_array($entry)) {
            foreach (['maxbytes', 'maxconns', 'evictions', 'cas_enabled', 'item_size_max', 'num_threads'] as $k) {
                $o['fields'][$k] = $entry[$k] ?? null;
            }
            $o['tcpport_is_ours'] = (int)($entry['tcpport'] ?? 0) === (int)$GLOBALS['port'];
        } elseif (is_array($entry)) {
            // items/slabs: the class ids and field names tools read.
            $o['fields'] = array_values(array_filter(array_keys($entry), fn($k) => !preg_match('/^(total_malloced|active_slabs)$/', $k)));
            sort($o['fields']);
        }
        $out[$name] = $o;
    }
    break;

case 'allkeys':
    $want = ['ak1', 'ak2', 'ak3', 'ak4'];
    foreach ($want as $k) $m->set($k, "value-$k");
    // memcached's cachedump lists only its COLD LRU, which new items reach
    // when its LRU maintainer moves them: ask again for up to 5 s.
    for ($i = 0; $i < 50; $i++) {
        $keys = $m->getAllKeys();
        if (!is_array($keys) || !array_diff($want, $keys)) break;
        usleep(100000);
    }
    if (is_array($keys)) { $keys = array_values(array_intersect($keys, $want)); sort($keys); }
    $out['keys'] = $keys;
    $out['rc'] = rc($m);
    break;

case 'data':
    $ops = [];
    $rec = function ($name, $res) use (&$ops, $m) { $ops[] = [$name, $res, rc($m)]; };
    $rec('set', $m->set('k', 'v1'));
    $rec('get', $m->get('k'));
    $rec('add existing', $m->add('k', 'v2'));
    $rec('add new', $m->add('k2', 'a'));
    $rec('replace', $m->replace('k', 'v3'));
    $rec('replace missing', $m->replace('nokey', 'x'));
    $rec('append', $m->append('k', '-end'));
    $rec('prepend', $m->prepend('k', 'start-'));
    $rec('get after append', $m->get('k'));
    $rec('append missing', $m->append('nokey', 'x'));
    $rec('delete', $m->delete('k'));
    $rec('delete again', $m->delete('k'));
    $rec('get deleted', $m->get('k'));
    $rec('set n', $m->set('n', '10'));
    $rec('increment', $m->increment('n', 5));
    $rec('decrement past 0', $m->decrement('n', 100));
    $rec('increment missing', $m->increment('nokey', 1));
    $rec('set non-numeric', $m->set('s', 'abc'));
    $rec('increment non-numeric', $m->increment('s', 1));
    $ext = $m->get('n', null, Memcached::GET_EXTENDED);
    $rec('get extended', is_array($ext) ? $ext['value'] : $ext);
    $cas = is_array($ext) ? $ext['cas'] : 0;
    $rec('cas stale', $m->cas($cas + 1000, 'n', '7'));
    $rec('cas current', $m->cas($cas, 'n', '7'));
    $rec('cas reused', $m->cas($cas, 'n', '8'));
    $rec('get after cas', $m->get('n'));
    $rec('touch', $m->touch('n', 100));
    $rec('touch missing', $m->touch('nokey', 100));
    $rec('typed int', $m->set('i', 42) ? $m->get('i') : null);
    $rec('typed array', $m->set('arr', ['a' => [1, 2]]) ? $m->get('arr') : null);
    $rec('expired', $m->set('gone', 'x', -1) ? $m->get('gone') : 'set failed');
    $multi = [];
    for ($i = 0; $i < 20; $i++) $multi["mk$i"] = "mv$i";
    $rec('setMulti', $m->setMulti($multi));
    $got = $m->getMulti(array_merge(array_keys($multi), ['nokey']));
    if (is_array($got)) ksort($got);
    $rec('getMulti', $got);
    $rec('deleteMulti', $m->deleteMulti(['mk0', 'mk1', 'nokey']));
    $rec('big value', $m->set('big', str_repeat('b', 500000)) ? strlen($m->get('big')) : null);
    $rec('flush', $m->flush());
    $rec('get flushed', $m->get('mk5'));
    $out['ops'] = $ops;
    // The client's own view: a set value reads back.
    if ($ops[1][1] !== 'v1') { fwrite(STDERR, "get after set returned " . var_export($ops[1][1], true) . "\n"); exit(1); }
    break;
}
echo json_encode($out), "\n";
