<?php
// php-memcached (libmemcached) with binary protocol, libketama-compatible
// ring and OPT_NUMBER_OF_REPLICAS: "set" stores p:0..p:999 (each on its
// primary and the next servers), "get" reads every key twice, one get at a
// time, and once with getMulti, and prints the counts as JSON.
// Usage: php replicas.php '[["127.0.0.1",port],...]' REPLICAS set|get
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$m->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
$m->setOption(Memcached::OPT_NUMBER_OF_REPLICAS, (int)$argv[2]);
$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 500);
foreach (json_decode($argv[1], true) as $s) { $m->addServer($s[0], $s[1]); }
$keys = [];
for ($i = 0; $i < 1000; $i++) { $keys[] = "p:$i"; }
$phase = $argv[3];
if ($phase == "set") {
  $n = 0;
  foreach ($keys as $k) { if ($m->set($k, "v-$k")) $n++; }
  $m->getMulti($keys);
  echo json_encode(["stored" => $n]);
} else {
  $rounds = [];
  for ($r = 0; $r < 2; $r++) {
    $ok = 0; $miss = 0; $err = 0; $errors = [];
    foreach ($keys as $k) {
      $v = $m->get($k);
      if ($v === "v-$k") $ok++;
      elseif ($m->getResultCode() == Memcached::RES_NOTFOUND) $miss++;
      else { $err++; $errors[] = "$k: " . $m->getResultCode() . " " . $m->getResultMessage(); }
    }
    $multi = $m->getMulti($keys);
    $rounds[] = ["ok" => $ok, "miss" => $miss, "err" => $err, "multi" => is_array($multi) ? count($multi) : -1,
                 "errors" => array_slice($errors, 0, 5)];
  }
  echo json_encode($rounds);
}
