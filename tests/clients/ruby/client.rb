# Ruby dalli (binary protocol) against one server: prints one JSON object
# of what the client observed (tests/py/test_client_ruby.py).
# Usage: ruby client.rb HOST:PORT version|stats|items|slabs|settings|reset_stats|data
require 'dalli'
require 'json'

server, step = ARGV
Dalli.logger.level = Logger::FATAL
# 10 s: a timeout is recorded as what the client saw, and a loaded machine
# can hold one server's reply back for seconds while the other's came.
dc = Dalli::Client.new(server, socket_timeout: 10, socket_max_failures: 1, down_retry_delay: 0)
out = {}

def version_ok(v)
  !!(v.is_a?(String) && v =~ /\A(\d+)\.(\d+)\.(\d+)/ && $1.to_i >= 1)
end

# A call's result, or the class of what it raised.
def attempt
  yield
rescue StandardError => e
  "raised #{e.class}"
end

case step
when 'version'
  v = attempt { dc.version }
  out['version_ok'] = v.is_a?(Hash) && version_ok(v[server])
when 'stats'
  dc.set('stat_key', 'v' * 100)
  general = attempt { dc.stats }
  g = general.is_a?(Hash) ? general[server] : nil
  out['general'] = g.is_a?(Hash) ? %w[pid uptime version curr_items total_items bytes cmd_get cmd_set get_hits get_misses threads limit_maxbytes].to_h { |k| [k, g.key?(k)] } : general
  out['general_version_ok'] = g.is_a?(Hash) && version_ok(g['version'])
when 'items', 'slabs', 'settings'
  dc.set('stat_key', 'v' * 100)
  s = attempt { dc.stats(step.to_sym) }
  h = s.is_a?(Hash) ? s[server] : nil
  out['stats'] = h.is_a?(Hash) ? { 'nonempty' => !h.empty?,
                                   'has' => h.keys.grep(/\Aitems:\d+:number\z|\A\d+:chunk_size\z|\Amaxbytes\z/).sort } : s
  # The pooled connection must still serve after a stats group.
  out['then_get'] = attempt { dc.get('stat_key')&.size }
when 'reset_stats'
  dc.get('nokey')
  r = attempt { dc.reset_stats }
  out['reset_stats'] = r
  out['after_reset_cmd_get'] = attempt { dc.stats[server]&.fetch('cmd_get', nil) }
when 'data'
  ops = []
  rec = ->(name, v) { ops << [name, v] }
  rec.('set', attempt { !!dc.set('k', 'v1') })
  rec.('get', attempt { dc.get('k') })
  rec.('add existing', attempt { dc.add('k', 'v2') })
  rec.('add new', attempt { !!dc.add('k2', 'a') })
  rec.('replace', attempt { !!dc.replace('k', 'v3', nil, raw: true) })
  rec.('replace missing', attempt { dc.replace('nokey', 'x') })
  rec.('append', attempt { !!dc.append('k', '-end') })
  rec.('prepend', attempt { !!dc.prepend('k', 'start-') })
  rec.('append missing', attempt { dc.append('nokey', 'x') })
  rec.('get raw', attempt { dc.get('k', raw: true) })
  rec.('cas', attempt { !!dc.cas('k2') { |v| v + 'b' } })
  rec.('get after cas', attempt { dc.get('k2') })
  rec.('cas missing', attempt { dc.cas('nokey') { |v| v } })
  rec.('incr create', attempt { dc.incr('n', 1, nil, 10) })
  rec.('incr', attempt { dc.incr('n', 5) })
  rec.('decr past 0', attempt { dc.decr('n', 100) })
  rec.('incr missing', attempt { dc.incr('nokey', 1) })
  rec.('touch', attempt { !!dc.touch('k2', 100) })
  rec.('touch missing', attempt { dc.touch('nokey', 100) })
  rec.('gat', attempt { dc.gat('k2', 100) })
  rec.('set with ttl', attempt { !!dc.set('ttl', 'x', 3600) })
  rec.('get ttl', attempt { dc.get('ttl') })
  rec.('fetch', attempt { dc.fetch('fetched') { 'computed' } })
  rec.('fetch again', attempt { dc.fetch('fetched') { 'not used' } })
  rec.('object', attempt { dc.set('obj', { 'a' => [1, 2] }) && dc.get('obj') })
  20.times { |i| dc.set("mk#{i}", "mv#{i}") }
  rec.('get_multi', attempt { dc.get_multi(*(0...20).map { |i| "mk#{i}" }, 'nokey').sort.to_h })
  rec.('delete', attempt { !!dc.delete('k') })
  rec.('delete again', attempt { dc.delete('k') })
  rec.('big', attempt { dc.set('big', 'b' * 500_000) && dc.get('big').size })
  rec.('flush', attempt { dc.flush.class.name })
  rec.('get flushed', attempt { dc.get('mk1') })
  out['ops'] = ops
  abort "get after set: #{ops[1][1].inspect}" unless ops[1][1] == 'v1'
end
puts JSON.generate(out)
