#!/usr/bin/perl
# Cache::Memcached and Cache::Memcached::Fast against one server: prints one
# JSON object of what the client observed (tests/py/test_client_perl.py).
# Usage: perl client.pl HOST:PORT cm|fast version|stats|data
use strict;
use warnings;
use JSON::PP;

my ($server, $lib, $step) = @ARGV;
my $json = JSON::PP->new->utf8->canonical->allow_nonref;
my %out;

sub version_ok { my $v = shift; return (defined $v && $v =~ /^(\d+)\.(\d+)\.(\d+)/ && $1 >= 1) ? JSON::PP::true : JSON::PP::false }
sub b { return $_[0] ? JSON::PP::true : JSON::PP::false }

if ($lib eq 'cm') {
    require Cache::Memcached;
    # 10 s: a timeout is recorded as what the client saw, and a loaded
    # machine can hold one server's reply back for seconds.
    my $m = Cache::Memcached->new({ servers => [$server], connect_timeout => 10, select_timeout => 10 });
    if ($step eq 'version' || $step eq 'stats') {
        $m->set('stat_key', 'v' x 100);
        my $s = $m->stats(['misc', 'items', 'slabs']);
        my $h = $s->{hosts}{$server} || {};
        my $misc = $h->{misc} || {};
        $out{version_ok} = version_ok($misc->{version});
        $out{misc_fields} = { map { $_ => b(exists $misc->{$_}) } qw(pid uptime curr_items total_items bytes curr_connections cmd_get cmd_set get_hits get_misses evictions limit_maxbytes threads) };
        $out{total_has_items} = b(exists $s->{total}{curr_items});
        $out{items_nonempty} = b(defined $h->{items} && $h->{items} =~ /STAT items:\d+:number/);
        $out{slabs_nonempty} = b(defined $h->{slabs} && $h->{slabs} =~ /STAT \d+:chunk_size/);
    } else {
        my @ops;
        my $rec = sub { push @ops, [$_[0], $_[1]] };
        $rec->('set', b($m->set('k', 'v1')));
        $rec->('get', $m->get('k'));
        $rec->('add existing', b($m->add('k', 'v2')));
        $rec->('replace', b($m->replace('k', 'v3')));
        $rec->('replace missing', b($m->replace('nokey', 'x')));
        $rec->('get', $m->get('k'));
        $rec->('delete', b($m->delete('k')));
        $rec->('delete again', b($m->delete('k')));
        $rec->('get deleted', $m->get('k'));
        $rec->('set n', b($m->set('n', 10)));
        $rec->('incr', $m->incr('n', 5));
        $rec->('decr past 0', $m->decr('n', 100));
        $rec->('incr missing', $m->incr('nokey', 1));
        $rec->('set ref', b($m->set('ref', { a => [1, 2] })));
        $rec->('get ref', $m->get('ref'));
        $rec->('expired', b($m->set('gone', 'x', -1)) ? $m->get('gone') : 'set failed');
        $m->set("mk$_", "mv$_") for 0 .. 19;
        $rec->('get_multi', $m->get_multi(map("mk$_", 0 .. 19), 'nokey'));
        $rec->('big', length($m->get('big') // '') ) if $m->set('big', 'b' x 500000);
        $rec->('flush_all', b($m->flush_all));
        $rec->('get flushed', $m->get('mk1'));
        $out{ops} = \@ops;
        die "get after set: " . ($ops[1][1] // 'undef') . "\n" unless ($ops[1][1] // '') eq 'v1';
    }
} else {
    require Cache::Memcached::Fast;
    # 10 s, as above.
    my $m = Cache::Memcached::Fast->new({ servers => [$server], connect_timeout => 10, io_timeout => 10, utf8 => 1 });
    if ($step eq 'version') {
        my $v = $m->server_versions;
        $out{version_ok} = version_ok($v->{$server});
    } else {
        my @ops;
        my $rec = sub { push @ops, [$_[0], $_[1]] };
        $rec->('set', b($m->set('k', 'v1')));
        $rec->('get', $m->get('k'));
        $rec->('add existing', b($m->add('k', 'v2')));
        $rec->('add new', b($m->add('k2', 'a')));
        $rec->('replace', b($m->replace('k', 'v3')));
        $rec->('append', b($m->append('k', '-end')));
        $rec->('prepend', b($m->prepend('k', 'start-')));
        $rec->('append missing', b($m->append('nokey', 'x')));
        $rec->('get', $m->get('k'));
        my $g = $m->gets('k');
        $rec->('gets', $g ? $g->[1] : undef);
        $rec->('cas stale', b($m->cas('k', $g->[0] + 1000, 'c1')));
        $rec->('cas current', b($m->cas('k', $g->[0], 'c2')));
        $rec->('cas reused', b($m->cas('k', $g->[0], 'c3')));
        $rec->('get after cas', $m->get('k'));
        $rec->('cas missing', b($m->cas('nokey', $g->[0], 'c')));
        $rec->('touch', b($m->touch('k', 100)));
        $rec->('touch missing', b($m->touch('nokey', 100)));
        $rec->('touch -1', b($m->touch('k', -1)));
        $rec->('get after touch -1', $m->get('k'));
        $rec->('set n', b($m->set('n', 10)));
        $rec->('incr', $m->incr('n', 5));
        $rec->('decr past 0', $m->decr('n', 100));
        $rec->('incr missing', $m->incr('nokey'));
        $rec->('delete', b($m->delete('n')));
        $rec->('delete again', b($m->delete('n')));
        $m->set_multi(map { ["mk$_", "mv$_"] } 0 .. 19);
        $rec->('get_multi', $m->get_multi(map("mk$_", 0 .. 19), 'nokey'));
        my $gm = $m->gets_multi('mk1', 'mk2');
        $rec->('gets_multi', { map { $_ => $gm->{$_}[1] } keys %$gm });
        $rec->('delete_multi', [ $m->delete_multi('mk0', 'nokey') ]);
        $rec->('utf8', b($m->set('u', "caf\x{e9}")) ? $m->get('u') : undef);
        $rec->('big', length($m->get('big') // '')) if $m->set('big', 'b' x 500000);
        $rec->('flush_all', b($m->flush_all));
        $rec->('get flushed', $m->get('mk1'));
        $out{ops} = \@ops;
        die "get after set: " . ($ops[1][1] // 'undef') . "\n" unless ($ops[1][1] // '') eq 'v1';
    }
}
print $json->encode(\%out), "\n";
