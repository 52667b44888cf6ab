//! Stable partitioning of contacts over shards.

use crate::engine::effect::Fnv;

/// The shard, in `0..shards`, that owns `contact`: FNV-1a of the id, then Lamping and
/// Veach's jump consistent hash, so the answer is the same on every machine and
/// growing from `n` to `n + 1` shards moves only about `1 / (n + 1)` of the contacts.
/// `shards == 0` is treated as 1.
///
/// ```
/// use nurture::engine::shard_of;
/// assert_eq!(shard_of("contact-42", 1), 0);
/// assert_eq!(shard_of("contact-42", 16), shard_of("contact-42", 16));
/// assert!(shard_of("contact-42", 16) < 16);
/// ```
pub fn shard_of(contact: &str, shards: u32) -> u32 {
    let shards = i64::from(shards.max(1));
    let mut key = Fnv::new().bytes(contact.as_bytes()).finish();
    let (mut b, mut j) = (-1i64, 0i64);
    while j < shards {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    u32::try_from(b).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_by_one_shard_moves_few_contacts() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
        let moved = ids.iter().filter(|id| shard_of(id, 10) != shard_of(id, 11)).count();
        // About 1/11 of them (909); every moved contact goes to the new shard.
        assert!((700..1100).contains(&moved), "{moved}");
        assert!(ids
            .iter()
            .filter(|id| shard_of(id, 10) != shard_of(id, 11))
            .all(|id| shard_of(id, 11) == 10));
        let mut counts = [0u32; 10];
        ids.iter().for_each(|id| counts[shard_of(id, 10) as usize] += 1);
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }
}
