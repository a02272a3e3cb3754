//! A structural index of one log line: where the spaces outside `"…"` are,
//! found 64 bytes at a time with SSE2 compares (part of every x86-64 CPU),
//! the way simdjson finds JSON's structure. A decoder then jumps from field
//! to field by bit scans instead of looking at every byte.
//!
//! Quoting is tracked by quote parity only (no escapes): a line holding a
//! backslash is flagged, and its decoder takes the byte-by-byte path.

/// Longest line indexed (longer lines take the byte-by-byte path).
pub const MAX_LINE: usize = 2048;
const WORDS: usize = MAX_LINE / 64;

pub struct Structure {
    /// Bit `i % 64` of word `i / 64`: byte `i` is a space outside quotes.
    sep: [u64; WORDS],
    /// Likewise for every `:` and `"` (where a `key:` ends, or cannot).
    key_ends: [u64; WORDS],
    len: usize,
    /// How many `"` the line holds.
    pub quotes: u32,
    /// The line holds a `\` (quote parity may be wrong).
    pub backslash: bool,
    /// Two separators in a row somewhere (or a leading one).
    pub doubled: bool,
}

impl Structure {
    /// The index of `line`, or `None` when it is longer than [`MAX_LINE`].
    /// Uses the widest compares this CPU has (AVX-512 finds the four
    /// masks of 64 bytes in four instructions; SSE2 needs sixteen).
    #[cfg(test)]
    pub fn of(line: &[u8]) -> Option<Structure> {
        let mut s = Structure::new();
        s.index(line).then_some(s)
    }

    /// An empty index, to be filled by [`Structure::index`] (kept in the
    /// caller's frame: returned by value, its half kilobyte was copied).
    #[inline(always)]
    pub const fn new() -> Structure {
        Structure {
            sep: [0; WORDS],
            key_ends: [0; WORDS],
            len: 0,
            quotes: 0,
            backslash: false,
            doubled: false,
        }
    }

    /// Indexes `line`; false when it is longer than [`MAX_LINE`]. Uses the
    /// widest compares this CPU has (AVX-512 finds the four masks of 64
    /// bytes in four instructions; SSE2 needs sixteen).
    #[inline]
    pub fn index(&mut self, line: &[u8]) -> bool {
        if line.len() > MAX_LINE {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512bw") {
                // SAFETY: the CPU has AVX-512BW (checked just above).
                unsafe { x86::index_avx512(line, self) };
                return true;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { x86::index_avx2(line, self) };
                return true;
            }
        }
        index_with(line, masks, self);
        true
    }

    /// The first separator at or after `from`, or the line's length.
    #[inline(always)]
    pub fn next_sep(&self, from: usize) -> usize {
        self.next_in(&self.sep, from)
    }

    /// The first `:` or `"` at or after `from`, or the line's length.
    #[inline(always)]
    pub fn next_key_end(&self, from: usize) -> usize {
        self.next_in(&self.key_ends, from)
    }

    #[inline(always)]
    fn next_in(&self, mask: &[u64; WORDS], from: usize) -> usize {
        let mut w = from / 64;
        if from >= self.len {
            return self.len;
        }
        let mut bits = mask[w] & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                return w * 64 + bits.trailing_zeros() as usize;
            }
            w += 1;
            if w * 64 >= self.len {
                return self.len;
            }
            bits = mask[w];
        }
    }
}

/// The index, with `masks` giving the space, quote, backslash and colon
/// masks of 64 bytes (the line's tail is padded with zeros).
/// Words past the line's are left as they are: no search reads them.
#[inline(always)]
fn index_with(line: &[u8], masks: impl Fn(&[u8; 64]) -> [u64; 4], s: &mut Structure) {
    s.len = line.len();
    s.quotes = 0;
    s.doubled = false;
    // All ones while the previous block ended inside quotes.
    let mut carry = 0u64;
    // The previous block's last byte was a separator (a line that starts
    // with a space counts as doubled: its first field is empty).
    let mut prev_sep = 1u64;
    let mut backslashes = 0u64;
    for (w, block) in line.chunks(64).enumerate() {
        let [space, quote, bs, colon] = match <&[u8; 64]>::try_from(block) {
            Ok(full) => masks(full),
            Err(_) => {
                let mut padded = [0u8; 64];
                padded[..block.len()].copy_from_slice(block);
                masks(&padded)
            }
        };
        let inside = prefix_xor(quote) ^ carry;
        carry = 0u64.wrapping_sub(inside >> 63);
        let sep = space & !inside;
        s.sep[w] = sep;
        s.key_ends[w] = colon | quote;
        s.quotes += quote.count_ones();
        backslashes |= bs;
        s.doubled |= sep & ((sep << 1) | prev_sep) != 0;
        prev_sep = sep >> 63;
    }
    s.backslash = backslashes != 0;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
        _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_set1_epi8,
    };

    use super::{Structure, index_with};

    #[target_feature(enable = "avx512bw")]
    pub(super) fn index_avx512(line: &[u8], s: &mut Structure) {
        index_with(
            line,
            |block| {
                // SAFETY: `block` is 64 readable bytes; the load is unaligned.
                let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
                [
                    _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b' ' as i8)),
                    _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'"' as i8)),
                    _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\\' as i8)),
                    _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b':' as i8)),
                ]
            },
            s,
        )
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn index_avx2(line: &[u8], s: &mut Structure) {
        index_with(
            line,
            |block| {
                let mut out = [0u64; 4];
                for half in 0..2 {
                    // SAFETY: bytes 32 * half .. + 32 of `block` are readable;
                    // the load is unaligned.
                    let v = unsafe { _mm256_loadu_si256(block[32 * half..].as_ptr().cast()) };
                    for (i, c) in [b' ', b'"', b'\\', b':'].into_iter().enumerate() {
                        let m =
                            _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(c as i8)));
                        out[i] |= u64::from(m as u32) << (32 * half);
                    }
                }
                out
            },
            s,
        )
    }

    #[cfg(test)]
    pub(super) fn detected() -> (bool, bool) {
        (
            std::arch::is_x86_feature_detected!("avx512bw"),
            std::arch::is_x86_feature_detected!("avx2"),
        )
    }
}

/// Bit `i` set where byte `i` of a quote-delimited region is inside (the
/// opening quote included, the closing one not).
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Space, quote, backslash and colon masks of 64 bytes.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn masks(block: &[u8; 64]) -> [u64; 4] {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&block[i..i + 8]);
        i64::from_le_bytes(a)
    };
    let mut out = [0u64; 4];
    for k in 0..4 {
        let (lo, hi) = (word(16 * k), word(16 * k + 8));
        // SAFETY: these intrinsics only need SSE2, which this function is
        // compiled for (the `cfg` above); none of them touches memory (the
        // two 8-byte reads are safe code and compile to one 16-byte load).
        let [s, q, b, c] = unsafe {
            let v = _mm_set_epi64x(hi, lo);
            [b' ', b'"', b'\\', b':']
                .map(|c| _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8))) as u16)
        };
        out[0] |= u64::from(s) << (16 * k);
        out[1] |= u64::from(q) << (16 * k);
        out[2] |= u64::from(b) << (16 * k);
        out[3] |= u64::from(c) << (16 * k);
    }
    out
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn masks(block: &[u8; 64]) -> [u64; 4] {
    scalar_masks(block)
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn scalar_masks(block: &[u8; 64]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (i, &c) in block.iter().enumerate().take(64) {
        out[0] |= u64::from(c == b' ') << i;
        out[1] |= u64::from(c == b'"') << i;
        out[2] |= u64::from(c == b'\\') << i;
        out[3] |= u64::from(c == b':') << i;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The separators by a byte loop that follows quote parity.
    fn separators(line: &[u8]) -> Vec<usize> {
        let mut inside = false;
        let mut out = Vec::new();
        for (i, &c) in line.iter().enumerate() {
            if c == b'"' {
                inside = !inside;
            } else if c == b' ' && !inside {
                out.push(i);
            }
        }
        out
    }

    fn walk(s: &Structure, len: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let i = s.next_sep(at);
            if i >= len {
                return out;
            }
            out.push(i);
            at = i + 1;
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_loop(line in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'"'), Just(b'\\'), Just(b':'), Just(b'a'), any::<u8>()], 0..300)) {
            let s = Structure::of(&line).unwrap();
            let seps = separators(&line);
            prop_assert_eq!(walk(&s, line.len()), seps.clone());
            prop_assert_eq!(s.quotes as usize, line.iter().filter(|&&c| c == b'"').count());
            prop_assert_eq!(s.backslash, line.contains(&b'\\'));
            let doubled = seps.first() == Some(&0) || seps.windows(2).any(|w| w[1] == w[0] + 1);
            prop_assert_eq!(s.doubled, doubled);
            for from in 0..=line.len() {
                let want = line[from..].iter().position(|&c| c == b':' || c == b'"').map_or(line.len(), |i| from + i);
                prop_assert_eq!(s.next_key_end(from), want);
            }
        }

        #[test]
        fn vector_masks_equal_scalar_ones(block in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'"'), Just(b'\\'), Just(b':'), any::<u8>()], 64)) {
            let block: [u8; 64] = block.try_into().unwrap();
            prop_assert_eq!(masks(&block), scalar_masks(&block));
        }

        /// Every implementation this CPU can run builds the same index.
        #[test]
        fn every_instruction_set_agrees(line in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'"'), Just(b'\\'), Just(b':'), any::<u8>()], 0..300)) {
            let build = |f: &dyn Fn(&mut Structure)| {
                let mut s = Structure::new();
                f(&mut s);
                s
            };
            let base = build(&|s| index_with(&line, scalar_masks, s));
            let mut all = vec![build(&|s| index_with(&line, masks, s))];
            #[cfg(target_arch = "x86_64")]
            {
                let (avx512, avx2) = x86::detected();
                if avx512 {
                    // SAFETY: detected.
                    all.push(build(&|s| unsafe { x86::index_avx512(&line, s) }));
                }
                if avx2 {
                    // SAFETY: detected.
                    all.push(build(&|s| unsafe { x86::index_avx2(&line, s) }));
                }
            }
            for s in all {
                prop_assert_eq!(s.sep, base.sep);
                prop_assert_eq!(s.len, base.len);
                prop_assert_eq!(s.key_ends, base.key_ends);
                prop_assert_eq!((s.quotes, s.backslash, s.doubled), (base.quotes, base.backslash, base.doubled));
            }
        }
    }

    proptest! {
        /// An index filled again for another line answers for that line
        /// only (the words past it keep the old line's bits).
        #[test]
        fn a_reused_index_forgets_the_longer_line(
            long in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'"'), Just(b':'), Just(b'a')], 0..600),
            short in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'"'), Just(b':'), Just(b'a')], 0..300),
        ) {
            let mut s = Structure::new();
            prop_assert!(s.index(&long));
            prop_assert!(s.index(&short));
            let fresh = Structure::of(&short).unwrap();
            prop_assert_eq!(walk(&s, short.len()), walk(&fresh, short.len()));
            prop_assert_eq!(s.next_sep(short.len()), short.len());
            prop_assert_eq!((s.quotes, s.backslash, s.doubled), (fresh.quotes, fresh.backslash, fresh.doubled));
            for from in 0..=short.len() + 1 {
                prop_assert_eq!(s.next_key_end(from), fresh.next_key_end(from));
            }
        }
    }

    #[test]
    fn too_long_lines_are_not_indexed() {
        assert!(Structure::of(&[b'a'; MAX_LINE]).is_some());
        assert!(Structure::of(&[b'a'; MAX_LINE + 1]).is_none());
    }

    #[test]
    fn spaces_inside_quotes_are_not_separators() {
        let line = br#"a "b c" d"#;
        let s = Structure::of(line).unwrap();
        assert_eq!(walk(&s, line.len()), vec![1, 7]);
    }
}
