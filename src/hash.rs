//! SipHash with a 128-bit output, for idempotency keys and duplicate fingerprints.
//!
//! Keys must be the same on every machine and for every release that reads the same
//! state format, and must not collide for different effects, even when an attacker
//! chooses event ids. 128-bit SipHash (Aumasson and Bernstein) gives both: a fixed,
//! portable definition with published test vectors, and a 2^-128 chance per pair of
//! inputs (finding any collision by brute force takes about 2^64 hashes). The core uses
//! SipHash-1-3 (one compression and three finalisation rounds, the variant Rust's
//! standard library hashes with); [`SipHasher128::new`] takes the rounds, so SipHash-2-4
//! is tested against the reference implementation's vectors too.
//!
//! Every part written with [`SipHasher128::part`] is prefixed with its length, so that
//! `("ab", "c")` and `("a", "bc")` hash differently. About 50 lines instead of a crate:
//! `docs/decisions.md`, "128-bit keys and fingerprints".

/// A SipHash-c-d state with 128-bit output, fed in pieces.
#[derive(Clone, Debug)]
pub(crate) struct SipHasher128 {
    v: [u64; 4],
    c: u8,
    d: u8,
    /// Bytes not yet compressed (fewer than 8), in the low bytes.
    tail: u64,
    ntail: usize,
    /// Total bytes written (only its low byte enters the hash, as the reference does).
    length: u64,
}

impl SipHasher128 {
    /// A hasher with key `(k0, k1)` and `c` compression, `d` finalisation rounds.
    pub(crate) fn new(k0: u64, k1: u64, c: u8, d: u8) -> SipHasher128 {
        SipHasher128 {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                // The 128-bit variant flips 0xee into v1.
                k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            c,
            d,
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    /// SipHash-1-3-128 under the crate's fixed key (the ASCII of `nurture-keys-v2\0`):
    /// what keys and fingerprints use. Changing it changes every key: it is part of the
    /// state format.
    pub(crate) fn keys() -> SipHasher128 {
        SipHasher128::new(0x6b2d_6572_7574_7275, 0x0032_762d_7379_6565, 1, 3)
    }

    fn rounds(&mut self, n: u8) {
        let v = &mut self.v;
        for _ in 0..n {
            v[0] = v[0].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(13) ^ v[0];
            v[0] = v[0].rotate_left(32);
            v[2] = v[2].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(16) ^ v[2];
            v[0] = v[0].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(21) ^ v[0];
            v[2] = v[2].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(17) ^ v[2];
            v[2] = v[2].rotate_left(32);
        }
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.rounds(self.c);
        self.v[0] ^= m;
    }

    /// Feeds raw bytes (no length prefix).
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len() as u64);
        let mut rest = bytes;
        // Fill the pending word first.
        while self.ntail > 0 && !rest.is_empty() {
            self.tail |= u64::from(rest[0]) << (8 * self.ntail);
            self.ntail += 1;
            rest = &rest[1..];
            if self.ntail == 8 {
                let m = self.tail;
                self.compress(m);
                self.tail = 0;
                self.ntail = 0;
            }
        }
        if self.ntail > 0 {
            return; // `rest` is empty: the pending word is still short
        }
        let mut words = rest.chunks_exact(8);
        for word in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(word);
            self.compress(u64::from_le_bytes(b));
        }
        for (i, byte) in words.remainder().iter().enumerate() {
            self.tail |= u64::from(*byte) << (8 * i);
        }
        self.ntail = words.remainder().len();
    }

    /// Feeds one part: its length (8 bytes, little-endian), then its bytes.
    pub(crate) fn part(&mut self, bytes: &[u8]) -> &mut SipHasher128 {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
        self
    }

    /// The 128-bit hash: the reference implementation's 16 output bytes, read as a
    /// little-endian number.
    pub(crate) fn finish(mut self) -> u128 {
        let b = self.tail | (self.length << 56);
        self.compress(b);
        self.v[2] ^= 0xee;
        self.rounds(self.d);
        let low = self.v.iter().fold(0, |a, v| a ^ v);
        self.v[1] ^= 0xdd;
        self.rounds(self.d);
        let high = self.v.iter().fold(0, |a, v| a ^ v);
        (u128::from(high) << 64) | u128::from(low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K0: u64 = 0x0706_0504_0302_0100;
    const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

    fn hash(c: u8, d: u8, len: usize) -> [u8; 16] {
        let message: Vec<u8> = (0..len as u8).collect();
        let mut h = SipHasher128::new(K0, K1, c, d);
        h.write(&message);
        h.finish().to_le_bytes()
    }

    fn bytes(hex: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn siphash_2_4_128_matches_the_reference_vectors() {
        // `vectors_sip128` of the reference implementation (github.com/veorq/SipHash,
        // vectors.h): key 00..0f, message 00..(len-1).
        for (len, want) in [
            (0, "a3817f04ba25a8e66df67214c7550293"),
            (1, "da87c1d86b99af44347659119b22fc45"),
            (7, "a1f1ebbed8dbc153c0b84aa61ff08239"),
            (8, "3b62a9ba6258f5610f83e264f31497b4"),
            (9, "264499060ad9baabc47f8b02bb6d71ed"),
            (15, "5493e99933b0a8117e08ec0f97cfc3d9"),
            (16, "6ee2a4ca67b054bbfd3315bf85230577"),
            (31, "2939b0183223fafc1723de4f52c43d35"),
            (63, "5150d1772f50834a503e069a973fbd7c"),
        ] {
            assert_eq!(hash(2, 4, len), bytes(want), "length {len}");
        }
    }

    #[test]
    fn siphash_1_3_128_matches_known_vectors() {
        // Empty message, key 00..0f: the vector of the `siphasher` crate's tests; the
        // others computed with `siphasher` 1.0.4 (`sip128::SipHasher13`).
        for (len, want) in SIP13_128 {
            assert_eq!(hash(1, 3, len), bytes(want), "length {len}");
        }
    }

    /// SipHash-1-3-128, key 00..0f, message 00..(len-1).
    const SIP13_128: [(usize, &str); 9] = [
        (0, "e77ebcb22788a5befd62db6add303001"),
        (1, "fc6f370460d3eda85e0573cc2b2ff063"),
        (7, "1084b923f2aae0c3a62f2ec80848ab77"),
        (8, "aa12fee1d5e3dab4724f16ab35f9c799"),
        (9, "81ddb8042cf33994f4720e0094137c42"),
        (15, "c17e5505b2bd526c2921cdec1e7e0109"),
        (16, "d0a8d95715518eebb513b0f83d9e1793"),
        (31, "42ea961c5b3c858b17c3e550dfa79010"),
        (63, "4c5800e34efe426f079f6b0aa75260ad"),
    ];

    #[test]
    fn writing_in_pieces_equals_writing_at_once() {
        let message: Vec<u8> = (0..100u8).collect();
        let mut whole = SipHasher128::keys();
        whole.write(&message);
        for split in [0, 1, 3, 7, 8, 9, 50, 99, 100] {
            let mut pieces = SipHasher128::keys();
            pieces.write(&message[..split]);
            let (a, b) = message[split..].split_at((100 - split) / 2);
            pieces.write(a);
            pieces.write(b);
            assert_eq!(pieces.finish(), whole.clone().finish(), "split at {split}");
        }
    }

    #[test]
    fn parts_are_length_prefixed() {
        let mut a = SipHasher128::keys();
        a.part(b"ab").part(b"c");
        let mut b = SipHasher128::keys();
        b.part(b"a").part(b"bc");
        let mut c = SipHasher128::keys();
        c.part(b"abc");
        let (a, b, c) = (a.finish(), b.finish(), c.finish());
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
    }
}
