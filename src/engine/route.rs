//! Which worker owns a key. Every worker and every client-side ring that
//! wants to reach the owner directly must hash the same way.

/// Which of `n` workers owns `key`: the high half of the key's route hash,
/// scaled to `n` (Lemire's multiply-shift range reduction, no division).
pub fn owner(route: &ahash::RandomState, n: usize, key: &[u8]) -> usize {
    if n == 1 {
        return 0;
    }
    let h = route.hash_one(key);
    (((h >> 32) * n as u64) >> 32) as usize
}

/// The route hasher: fixed seeds, so every worker (and every restart)
/// agrees on owners. Distinct from the store's index hash, so a shard's
/// keys still spread over its whole index.
pub fn route_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(
        0x5be0_cd19_137e_2179,
        0x1f83_d9ab_fb41_bd6b,
        0x9b05_688c_2b3e_6c1f,
        0x510e_527f_ade6_82d1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_cover_every_worker_and_stay_in_range() {
        let r = route_hasher();
        for n in 1..=8 {
            let mut seen = vec![0usize; n];
            for i in 0..10_000 {
                let o = owner(&r, n, format!("key:{i}").as_bytes());
                seen[o] += 1;
            }
            assert!(seen.iter().all(|&c| c > 10_000 / n / 2), "{n}: {seen:?}");
        }
    }
}
