//! The torture test's randomness and its self-checking values: each value
//! is a run of records (key, version, padding, checksum), so a value under
//! the wrong key, torn or corrupted shows in the value itself.

/// xorshift64: seeded, so a failing run repeats.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fnv(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// One self-checking record: key#version#padlen#pad#checksum;
pub fn record(key: &str, ver: u64, pad: usize) -> Vec<u8> {
    let fill = b'a' + (fnv(format!("{key}{ver}").as_bytes()) % 26) as u8;
    let body = format!(
        "{key}#{ver}#{pad}#{}",
        (fill as char).to_string().repeat(pad)
    );
    format!("{body}#{:08x};", fnv(body.as_bytes())).into_bytes()
}

/// Checks every record of a value; returns the error if any.
pub fn check_records(key: &str, value: &[u8]) -> Result<(), String> {
    if value.is_empty() || *value.last().unwrap() != b';' {
        return Err(format!(
            "torn value for {key}: {:?}",
            String::from_utf8_lossy(value)
        ));
    }
    for rec in value[..value.len() - 1].split(|&c| c == b';') {
        let text = std::str::from_utf8(rec).map_err(|_| format!("non-utf8 record under {key}"))?;
        let (body, sum) = text
            .rsplit_once('#')
            .ok_or_else(|| format!("bad record under {key}: {text}"))?;
        if format!("{:08x}", fnv(body.as_bytes())) != sum {
            return Err(format!("corrupt record under {key}: {text}"));
        }
        let rkey = body.split('#').next().unwrap();
        if rkey != key {
            return Err(format!("value of {rkey} returned under {key}"));
        }
    }
    Ok(())
}
