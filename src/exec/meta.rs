//! Executes meta commands (`mg ms md ma mn me`), anti-stampede flags
//! included, following memcached's `proto_parser.c`.

use super::ops::{store_mode, AutoCreate};
use super::reply::{push_line, push_num, push_value};
use super::shard::Shard;
use crate::protocol::meta::{
    base64_decode, base64_encode, ms_mode, MetaCmd, MetaRequest, BAD_KEY_ENCODING, MS_BAD_MODE,
};
use crate::protocol::text::{self, tokens};
use crate::protocol::{SetMode as Mode, StoreCmd, KEY_MAX};
use crate::store::classes;
use crate::store::item::{FETCHED, KEY_BINARY, STALE, WIN_SENT};
use crate::store::{DeleteOutcome, DeltaOutcome, SetArgs, SetMode, SetOutcome};

/// The key a meta request names, base64-decoded when flagged.
pub fn meta_key<'a>(m: &MetaRequest<'a>, buf: &'a mut [u8; KEY_MAX + 6]) -> Option<&'a [u8]> {
    if m.f.base64 {
        base64_decode(m.key, buf)
    } else {
        Some(m.key)
    }
}

/// Echoes a flag every reply carries (opaque, key, base64 marker);
/// false if `t` is not one of them.
fn echo_flag(m: &MetaRequest, t: &[u8], out: &mut Vec<u8>) -> bool {
    match t[0] {
        b'O' => {
            out.push(b' ');
            out.extend_from_slice(t);
        }
        // memcached's META_KEY writes a base64 key's marker right after
        // it, and `b` itself echoes nothing: `kZm9v b` whatever the order.
        b'k' => {
            push_key(m, out);
            if m.f.base64 {
                out.extend_from_slice(b" b");
            }
        }
        b'b' => {}
        _ => return false,
    }
    true
}

fn echo_common(m: &MetaRequest, out: &mut Vec<u8>) {
    for t in tokens(m.flag_tokens) {
        echo_flag(m, t, out);
    }
}

fn push_key(m: &MetaRequest, out: &mut Vec<u8>) {
    out.extend_from_slice(b" k");
    out.extend_from_slice(m.key);
}

/// ` k<key>` of a found item, as the item was stored: base64 and ` b` if
/// its key came base64 (`KEY_BINARY`), raw otherwise, whichever way this
/// request named it (memcached's META_KEY on ITEM_KEY_BINARY).
fn push_item_key(m: &MetaRequest, binary: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b" k");
    match (binary, m.f.base64) {
        (true, true) | (false, false) => out.extend_from_slice(m.key),
        (true, false) => base64_encode(m.key, out),
        (false, true) => {
            let mut buf = [0u8; KEY_MAX + 6];
            out.extend_from_slice(meta_key(m, &mut buf).unwrap_or(m.key));
        }
    }
    if binary {
        out.extend_from_slice(b" b");
    }
}

fn status(out: &mut Vec<u8>, code: &str, m: &MetaRequest) {
    out.extend_from_slice(code.as_bytes());
    echo_common(m, out);
    out.extend_from_slice(b"\r\n");
}

/// Executes one meta command whose key this shard owns (`mn` included)
/// and writes its reply; quiet mode hides the nominal one.
pub fn exec(sh: &mut Shard, m: &MetaRequest, out: &mut Vec<u8>) {
    if m.cmd == MetaCmd::Noop {
        return push_line(out, "MN");
    }
    let mut kbuf = [0u8; KEY_MAX + 6];
    let Some(key) = meta_key(m, &mut kbuf) else {
        return push_line(
            out,
            match m.cmd {
                // memcached's process_meta_command has one error for all.
                MetaCmd::Debug => text::BAD_FORMAT,
                // md and ma answer every flag error alike, a key that is
                // not base64 under `b` included (1.6.18, measured).
                MetaCmd::Delete | MetaCmd::Arith => "CLIENT_ERROR invalid or duplicate flag",
                _ => BAD_KEY_ENCODING,
            },
        );
    };
    let start = out.len();
    let quiet_ok = match m.cmd {
        MetaCmd::Get => get(sh, m, key, out),
        MetaCmd::Set => set(sh, m, key, out),
        MetaCmd::Delete => delete(sh, m, key, out),
        MetaCmd::Arith => arith(sh, m, key, out),
        MetaCmd::Debug => {
            // memcached 1.6.18 counts in cmd_meta only the `me` commands
            // that reach the lookup, none of mg/ms/md/ma/mn
            // (proto_text.c process_meta_command).
            sh.c.cmd_meta += 1;
            debug(sh, key, out);
            false
        }
        MetaCmd::Noop => unreachable!(),
    };
    // Quiet mode hides the nominal reply; errors always go out.
    if m.f.quiet && quiet_ok {
        out.truncate(start);
    }
}

/// mg. Returns true if the reply is one quiet mode hides (a miss).
fn get(sh: &mut Shard, m: &MetaRequest, key: &[u8], out: &mut Vec<u8>) -> bool {
    let f = m.f;
    let mut won = false;
    let mut created = false;
    let mut found = sh.store.find_read(key);
    if found.is_none() {
        if let Some(ttl) = f.vivify {
            let mut a = SetArgs::new(SetMode::Add, key, b"", 0, ttl);
            a.win_sent = true;
            // Not KEY_BINARY: memcached's vivified item echoes its key raw.
            // memcached links the new item without another lookup: no
            // `watch` line for these.
            if let SetOutcome::Stored { .. } = sh.store.unnoted(|s| s.set(&a)) {
                found = sh.store.unnoted(|s| s.find(key));
                created = found.is_some();
                won = created;
            }
        }
    }
    // memcached counts a hit with T as a touch, and a miss as a get miss
    // whatever the flags (process_mget_command).
    sh.count_fetch(found.is_some(), f.touch.is_some() && found.is_some());
    let Some(mut it) = found else {
        status(out, "EN", m);
        return true;
    };
    // Fetched and last-access are reported as they were before this read.
    let was_fetched = it.item.iflags() & FETCHED != 0;
    let idle = it.item.idle_secs(sh.store.now());
    let at = ExpiryByPlace::new(sh, m, (!created).then(|| it.item.expire()));
    if let Some(t) = f.touch.filter(|_| at.touch_applies()) {
        match sh.retouch(&it, t) {
            Some(n) => it = n,
            None => {
                status(out, "EN", m);
                return true;
            }
        }
    }
    let mut iflags = it.item.iflags();
    if created {
        // Linked already marked (`SetArgs::win_sent`); this reply is the
        // one that hands the token out: W, not Z.
        iflags &= !WIN_SENT;
    }
    if let Some(r) = f.recache {
        let exp = at.expire_at(b'R');
        let token = sh.store.clock().expire_at(r);
        if iflags & WIN_SENT == 0 && !created && exp != 0 && exp < token {
            won = true;
        }
    }
    let facts = HitFacts {
        vlen: it.item.vlen(),
        flags: it.item.flags(),
        cas: sh.store.client_cas(&it),
        ttl: at.ttl_at(b't', sh.store.now()),
        idle,
        was_fetched,
        iflags,
    };
    let value = it.item.value();
    if render_hit(m, &facts, won, out, |out| push_value(sh, out, value)) {
        it.item.set_iflags(WIN_SENT, 0);
    }
    if !f.no_bump {
        sh.store.bump(&it);
    }
    false
}

/// An `mg` hit's expiry (absolute store time, 0 = never) as memcached's
/// flag loop sees it at each place in the line (process_mget_command,
/// 1.6.18 and HEAD alike): `T` sets it where it stands, and so does `N`
/// on an item it created (which memcached links with none); `t` and `R`
/// read it where they stand. So `mg k t T30` shows the TTL from before
/// the touch, and of `T` and `N` on a created item the later one wins.
struct ExpiryByPlace {
    /// The item's expiry before this request: none for a created item.
    before: u32,
    /// (place, expiry) of `T`, and of `N` on a created item.
    touch: Option<(usize, u32)>,
    vivify: Option<(usize, u32)>,
    /// Places of `t` and `R`.
    t: Option<usize>,
    r: Option<usize>,
}

impl ExpiryByPlace {
    /// `before`: the item's expiry before this request, if it was there
    /// (else `N` created it).
    fn new(sh: &Shard, m: &MetaRequest, before: Option<u32>) -> ExpiryByPlace {
        let place = |c: u8| tokens(m.flag_tokens).position(|t| t[0] == c);
        let clock = sh.store.clock();
        let vivify = m.f.vivify.filter(|_| before.is_none());
        if m.f.touch.is_none() && vivify.is_none() {
            // Nothing changes the expiry in the line (most mg hits): no
            // place matters, and the flags are not scanned again.
            return ExpiryByPlace {
                before: before.unwrap_or(0),
                touch: None,
                vivify: None,
                t: None,
                r: None,
            };
        }
        ExpiryByPlace {
            before: before.unwrap_or(0),
            touch: m
                .f
                .touch
                .and_then(|t| Some((place(b'T')?, clock.expire_at(t)))),
            vivify: vivify.and_then(|v| Some((place(b'N')?, clock.expire_at(v)))),
            t: place(b't'),
            r: place(b'R'),
        }
    }

    /// The expiry flag `c` (`t` or `R`) reads at its place.
    fn expire_at(&self, c: u8) -> u32 {
        let here = if c == b't' { self.t } else { self.r }.unwrap_or(usize::MAX);
        [self.touch, self.vivify]
            .into_iter()
            .flatten()
            .filter(|(p, _)| *p < here)
            .max_by_key(|(p, _)| *p)
            .map_or(self.before, |(_, e)| e)
    }

    /// Seconds left to live as flag `c` reads them at its place, -1 for
    /// never; `now` in store time.
    fn ttl_at(&self, c: u8, now: u32) -> i64 {
        match self.expire_at(c) {
            0 => -1,
            e => e.saturating_sub(now) as i64,
        }
    }

    /// Whether `T` sets the item's final expiry: not when `N`, after it,
    /// sets a created item's (created with N's already).
    fn touch_applies(&self) -> bool {
        !matches!((self.touch, self.vivify), (Some((t, _)), Some((n, _))) if n > t)
    }
}

/// What an `mg` hit's reply shows of the item, read by the owner or
/// (store/foreign.rs) by another worker.
#[derive(Clone, Copy, Debug)]
pub struct HitFacts {
    /// Value bytes.
    pub vlen: usize,
    /// Client flags.
    pub flags: u32,
    /// CAS unique.
    pub cas: u64,
    /// Seconds left to live, -1 for never (`t`).
    pub ttl: i64,
    /// Seconds since the last access before this read (`l`).
    pub idle: u32,
    /// Read before this read (`h`).
    pub was_fetched: bool,
    /// Item flags (STALE and WIN_SENT show as `X`, `Z`, `W`).
    pub iflags: u8,
}

/// Whether an `mg` can be answered without changing the item: no
/// vivify (`N`), touch (`T`) or recache (`R`) flag. An item that would
/// hand out a win token (stale and no token sent) changes too: see
/// `would_win`.
pub fn reads_only(m: &MetaRequest) -> bool {
    m.cmd == MetaCmd::Get && m.f.vivify.is_none() && m.f.touch.is_none() && m.f.recache.is_none()
}

/// Whether an `mg` asks what earlier reads did to the item (`h`
/// fetched, `l` last access): the owner answers those, after the access
/// notes of foreign reads sent before (engine/foreign_read.rs).
pub fn asks_access(m: &MetaRequest) -> bool {
    tokens(m.flag_tokens).any(|t| matches!(t[0], b'h' | b'l'))
}

/// Whether a hit on an item with these flags hands out a win token (so
/// marks the item): stale, and no token sent yet.
pub fn would_win(iflags: u8) -> bool {
    iflags & STALE != 0 && iflags & WIN_SENT == 0
}

/// Writes an `mg` hit's reply; `value` appends the value when it is
/// sent. `won` says a win token is already due (vivified or recache);
/// returns whether one is handed out, which the caller records on the
/// item (WIN_SENT).
pub fn render_hit(
    m: &MetaRequest,
    facts: &HitFacts,
    mut won: bool,
    out: &mut Vec<u8>,
    value: impl FnOnce(&mut Vec<u8>),
) -> bool {
    let f = m.f;
    let iflags = facts.iflags;
    let send_value = f.value && f.cas != Some(facts.cas);
    if send_value {
        out.extend_from_slice(b"VA ");
        push_num(out, facts.vlen);
    } else {
        out.extend_from_slice(b"HD");
    }
    for t in tokens(m.flag_tokens) {
        match t[0] {
            b's' => {
                out.extend_from_slice(b" s");
                push_num(out, facts.vlen);
            }
            b't' => {
                out.extend_from_slice(b" t");
                push_num(out, facts.ttl);
            }
            b'c' => {
                out.extend_from_slice(b" c");
                push_num(out, facts.cas);
            }
            b'f' => {
                out.extend_from_slice(b" f");
                push_num(out, facts.flags);
            }
            b'l' => {
                out.extend_from_slice(b" l");
                push_num(out, facts.idle);
            }
            b'h' => out.extend_from_slice(if facts.was_fetched { b" h1" } else { b" h0" }),
            b'k' => push_item_key(m, iflags & KEY_BINARY != 0, out),
            _ => {
                echo_flag(m, t, out);
            }
        }
    }
    if iflags & WIN_SENT != 0 {
        out.extend_from_slice(b" Z");
    }
    if iflags & STALE != 0 {
        out.extend_from_slice(b" X");
        if iflags & WIN_SENT == 0 {
            won = true;
        }
    }
    if won {
        out.extend_from_slice(b" W");
    }
    out.extend_from_slice(b"\r\n");
    if send_value {
        value(out);
        out.extend_from_slice(b"\r\n");
    }
    won
}

/// The reply to an `mg` miss (`EN`), unless quiet mode hides it.
pub fn render_miss(m: &MetaRequest, out: &mut Vec<u8>) {
    if !m.f.quiet {
        status(out, "EN", m);
    }
}

/// ms. Returns true on success (hidden by quiet mode).
fn set(sh: &mut Shard, m: &MetaRequest, key: &[u8], out: &mut Vec<u8>) -> bool {
    let f = m.f;
    let Some(mode) = ms_mode(f.mode) else {
        push_line(out, MS_BAD_MODE);
        return false;
    };
    let mut a = SetArgs::new(
        store_mode(mode),
        key,
        m.value,
        f.client_flags.unwrap_or(0),
        f.touch.unwrap_or(0),
    );
    let cas = f.cas.map(|c| sh.store_unique(c));
    a.cas = cas.unwrap_or(0);
    a.invalidate = f.invalidate;
    a.vivify = f.vivify;
    a.key_binary = f.base64;
    // memcached 1.6.18 (measured): in set and replace modes C makes the
    // store a CAS store, whose 0 matches nothing; add ignores a C; append
    // and prepend compare one only when it is not 0 (`SetArgs::is_cas_store`).
    let r = if cas == Some(0) && matches!(mode, Mode::Set | Mode::Replace) {
        sh.store_cas_zero(key)
    } else {
        sh.store_item(&a, StoreCmd::Meta, mode)
    };
    let code = match r {
        SetOutcome::Stored { .. } => "HD",
        SetOutcome::NotStored => "NS",
        SetOutcome::Exists => "EX",
        SetOutcome::NotFound => "NF",
        SetOutcome::TooLarge => {
            push_line(out, text::TOO_LARGE);
            return false;
        }
        SetOutcome::NoMemory => {
            push_line(out, text::NO_MEMORY);
            return false;
        }
    };
    out.extend_from_slice(code.as_bytes());
    for t in tokens(m.flag_tokens) {
        if echo_flag(m, t, out) {
            continue;
        }
        // memcached's ms returns the stored item's CAS, and c0 when
        // nothing was stored (EX, NF, NS).
        if t[0] == b'c' {
            out.extend_from_slice(b" c");
            push_num(
                out,
                if let SetOutcome::Stored { cas } = r {
                    cas
                } else {
                    0
                },
            );
        }
    }
    out.extend_from_slice(b"\r\n");
    matches!(r, SetOutcome::Stored { .. })
}

/// md. Returns true for HD (hidden by quiet mode).
fn delete(sh: &mut Shard, m: &MetaRequest, key: &[u8], out: &mut Vec<u8>) -> bool {
    let f = m.f;
    let cas = f.cas.unwrap_or(0);
    // A C of 0 matches no item's CAS, unless CAS is off (`-C`): then every
    // item's is 0 and it matches all, as memcached compares it.
    let r = if cas == 0 && f.cas.is_some() && sh.store.cas_enabled() {
        match sh.cas_zero_present(key) {
            true => DeleteOutcome::Exists,
            false => DeleteOutcome::NotFound,
        }
    } else if f.invalidate {
        sh.store.invalidate(key, cas, f.touch)
    } else {
        sh.store.delete(key, cas)
    };
    // memcached's process_mdelete_command: an EX counts as a miss (binary
    // and text delete count nothing for it), and marking stale with I
    // counts nothing.
    match r {
        DeleteOutcome::Exists => sh.c.delete_misses += 1,
        DeleteOutcome::Deleted if f.invalidate => {}
        r => sh.count_delete(r),
    }
    let code = match r {
        DeleteOutcome::Deleted => "HD",
        DeleteOutcome::NotFound => "NF",
        DeleteOutcome::Exists => "EX",
    };
    status(out, code, m);
    // Quiet mode hides only HD (memcached: "q: noreply semantics for
    // return codes" suppresses the success code; NF and EX still go).
    r == DeleteOutcome::Deleted
}

/// ma. Returns true for HD and VA (hidden by quiet mode).
fn arith(sh: &mut Shard, m: &MetaRequest, key: &[u8], out: &mut Vec<u8>) -> bool {
    let f = m.f;
    let incr = match f.mode.unwrap_or(b'I') {
        b'I' | b'+' => true,
        b'D' | b'-' => false,
        _ => {
            push_line(out, "CLIENT_ERROR invalid mode for ma M token");
            return false;
        }
    };
    let delta = f.delta.unwrap_or(1);
    let create = f.vivify.map(|exptime| AutoCreate {
        initial: f.initial.unwrap_or(0),
        exptime,
    });
    // A look before the one arith makes (memcached makes one).
    let before = sh.store.unnoted(|s| s.find(key)).map(|f| f.item.expire());
    // Unlike ms and md, memcached 1.6's ma takes C0 as "no check".
    let r = sh.arith(key, incr, delta, f.cas.unwrap_or(0), create);
    // As mg's: memcached's last loop applies T, and N on an item it
    // created, where they stand; t reads the expiry at its place.
    let at = ExpiryByPlace::new(sh, m, before);
    if let (DeltaOutcome::Value { .. }, Some(t)) = (r, f.touch) {
        if at.touch_applies() {
            sh.store.touch(key, t);
        }
    }
    let (code, value) = match r {
        DeltaOutcome::Value { value, .. } => (if f.value { "VA" } else { "HD" }, Some(value)),
        DeltaOutcome::NotFound => ("NF", None),
        DeltaOutcome::Exists => ("EX", None),
        DeltaOutcome::NonNumeric => {
            push_line(out, text::NON_NUMERIC);
            return false;
        }
        DeltaOutcome::NoMemory => {
            push_line(out, "SERVER_ERROR out of memory");
            return false;
        }
    };
    let mut num = itoa::Buffer::new();
    let digits = value.map(|v| num.format(v).to_owned());
    out.extend_from_slice(code.as_bytes());
    if code == "VA" {
        out.push(b' ');
        push_num(out, digits.as_ref().map_or(0, |d| d.len()));
    }
    let item = value.and_then(|_| sh.store.find(key));
    for t in tokens(m.flag_tokens) {
        if echo_flag(m, t, out) {
            continue;
        }
        match t[0] {
            b'c' => {
                if let Some(it) = &item {
                    out.extend_from_slice(b" c");
                    push_num(out, sh.store.client_cas(it));
                }
            }
            b't' if item.is_some() => {
                out.extend_from_slice(b" t");
                push_num(out, at.ttl_at(b't', sh.store.now()));
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    if let (true, Some(d)) = (code == "VA", digits) {
        out.extend_from_slice(d.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Quiet hides the success codes, HD and VA, of an item that was
    // there; one that N created is still answered; NF and EX always go
    // (memcached 1.6.18, measured: `ma x N0 J9 v q` on a miss gives
    // `VA 1`/`9`, `ma y N0 q` gives `HD`).
    (code == "HD" || code == "VA") && before.is_some()
}

/// me: item metadata in memcached's debug format.
fn debug(sh: &mut Shard, key: &[u8], out: &mut Vec<u8>) {
    let Some(it) = sh.store.find(key) else {
        return push_line(out, "EN");
    };
    out.extend_from_slice(b"ME ");
    if it.item.iflags() & KEY_BINARY != 0 {
        base64_encode(key, out);
    } else {
        out.extend_from_slice(key);
    }
    out.extend_from_slice(b" exp=");
    push_num(out, sh.store.ttl_left(&it));
    out.extend_from_slice(b" la=");
    push_num(out, it.item.idle_secs(sh.store.now()));
    out.extend_from_slice(b" cas=");
    push_num(out, sh.store.client_cas(&it));
    out.extend_from_slice(if it.item.iflags() & FETCHED != 0 {
        b" fetch=yes"
    } else {
        b" fetch=no"
    });
    // memcached's item size and slab class, as metadump gives them.
    let size = classes::memcached_size(key.len(), it.item.vlen(), it.item.flags());
    out.extend_from_slice(b" cls=");
    push_num(out, classes::class_of(size));
    out.extend_from_slice(b" size=");
    push_num(out, size);
    out.extend_from_slice(b"\r\n");
}
