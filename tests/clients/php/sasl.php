<?php
// php-memcached's SASL login (binary protocol), then a set and a get.
// Usage: php -d memcached.use_sasl=1 sasl.php HOST PORT USER PASSWORD
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$m->addServer($argv[1], (int)$argv[2]);
$m->setSaslAuthData($argv[3], $argv[4]);
$ok = $m->set("php:k", "pv");
$rc = $m->getResultCode();
$v = $m->get("php:k");
echo "set=" . ($ok ? 1 : 0) . " rc=" . $rc . " get=" . ($v === false ? "" : $v) . "\n";
