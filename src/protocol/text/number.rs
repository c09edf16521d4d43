//! Numbers as memcached's tokenizer reads them (`safe_strto*` in
//! memcached's util.c): the text and meta parsers share these.

/// C's `isspace` in the "C" locale.
fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A token read as C's `strtoull`/`strtol` read it in memcached's
/// `safe_strto*` (util.c): leading whitespace, one optional sign, decimal
/// digits, and then either the end of the token or a whitespace byte after
/// which the rest is ignored. Returns the sign and the magnitude; None for
/// no digits, other trailing bytes, or a magnitude over 64 bits (ERANGE).
fn c_number(t: &[u8]) -> Option<(bool, u64)> {
    let mut i = t.iter().take_while(|&&c| c_isspace(c)).count();
    let neg = match t.get(i) {
        Some(b'-') => true,
        Some(b'+') => false,
        _ => {
            i = i.wrapping_sub(1);
            false
        }
    };
    i = i.wrapping_add(1);
    let start = i;
    let mut n: u64 = 0;
    while let Some(&c) = t.get(i).filter(|c| c.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
        i += 1;
    }
    if i == start || t.get(i).is_some_and(|&c| !c_isspace(c)) {
        return None;
    }
    Some((neg, n))
}

/// memcached's `safe_strtoull`: `+5` and `5<TAB>` are 5; a minus sign is
/// refused unless the negated value still reads as non-negative (so `-0`
/// is 0), as memcached checks it.
pub fn parse_u64(t: &[u8]) -> Option<u64> {
    match c_number(t)? {
        (false, n) => Some(n),
        (true, n) => Some(n.wrapping_neg()).filter(|v| (*v as i64) >= 0),
    }
}

/// memcached's `safe_strtoul` for 32-bit fields (client flags in text and
/// meta, `verbosity`, `cache_memlimit`, the ascii auth `set` length): read
/// as C's 64-bit `unsigned long` (beyond it ERANGE, refused; a minus sign
/// as `parse_u64`), then stored into a `uint32_t`, which keeps the low 32
/// bits: `4294967297` is 1 and `18446744073709551615` is 4294967295.
/// 1.6.18 and HEAD alike (HEAD takes 64-bit flags only when built with
/// `--enable-large-client-flags`, which Debian's is not).
pub fn parse_u32(t: &[u8]) -> Option<u32> {
    parse_u64(t).map(|n| n as u32)
}

/// memcached's `safe_strtod` (util.c) on glibc's `strtod`: leading
/// whitespace, an optional sign, then a decimal number with an optional
/// exponent, a hexadecimal one (`0x1p3`), `inf`/`infinity` or `nan`
/// (`nan(...)` too), any case; then the end of the token or whitespace.
/// None where `strtod` reads nothing or sets ERANGE: a magnitude beyond
/// `f64` (`1e400`) or one so small it is subnormal or lost (`1e-310`,
/// `1e-400`), but not a written zero.
pub fn parse_f64(t: &[u8]) -> Option<f64> {
    let ws = t.iter().take_while(|&&c| c_isspace(c)).count();
    let body = &t[ws..];
    let end = body
        .iter()
        .position(|&c| c_isspace(c))
        .unwrap_or(body.len());
    let (num, s) = (&body[..end], std::str::from_utf8(&body[..end]).ok()?);
    let (neg, rest) = match num.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = rest.to_ascii_lowercase();
    let sign = if neg { -1.0 } else { 1.0 };
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if lower == "nan"
        || (lower.starts_with("nan(")
            && lower.ends_with(')')
            && lower[4..lower.len() - 1]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_'))
    {
        return Some(f64::NAN);
    }
    let (v, nonzero) = if let Some(hex) = lower.strip_prefix("0x") {
        hex_float(hex)?
    } else {
        let nonzero = rest
            .bytes()
            .take_while(|c| *c != b'e' && *c != b'E')
            .any(|c| (b'1'..=b'9').contains(&c));
        let ok = rest
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == b'.')
            && rest
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'));
        (ok.then(|| rest.parse::<f64>().ok()).flatten()?, nonzero)
    };
    // ERANGE: overflow to infinity, or a nonzero number read as zero or
    // as a subnormal.
    if v.is_infinite() || (nonzero && (v == 0.0 || v.is_subnormal())) {
        return None;
    }
    Some(sign * v)
}

/// The digits after `0x` of a C hexadecimal float (`1.8p3`): the value and
/// whether any digit is nonzero.
fn hex_float(h: &str) -> Option<(f64, bool)> {
    let (mant, exp) = match h.find('p') {
        Some(i) => (&h[..i], Some(&h[i + 1..])),
        None => (h, None),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    let mut nonzero = false;
    for c in int.chars().chain(frac.chars()) {
        let d = c.to_digit(16)?;
        nonzero |= d != 0;
        v = v * 16.0 + d as f64;
    }
    let e: i32 = match exp {
        Some(e) if !e.is_empty() => e.parse().ok()?,
        Some(_) => return None,
        None => 0,
    };
    let e = e.checked_sub(4 * frac.len() as i32)?;
    Some((v * 2f64.powi(e), nonzero))
}

/// A signed 32-bit number, as memcached's `safe_strtol` takes exptimes and
/// lengths (text and meta): read as C's 64-bit `long` (beyond it ERANGE,
/// refused), then stored into an `int32_t`, which keeps the low 32 bits:
/// `4294967296` is 0, `2147483648` is -2147483648, `-2147483649` is
/// 2147483647. Returned widened to i64.
pub fn parse_i32(t: &[u8]) -> Option<i64> {
    let (neg, d) = c_number(t)?;
    let n: i64 = match (neg, i64::try_from(d)) {
        (false, Ok(n)) => n,
        (true, Ok(n)) => -n,
        (true, Err(_)) if d == 1 << 63 => i64::MIN,
        _ => return None,
    };
    Some(n as i32 as i64)
}
