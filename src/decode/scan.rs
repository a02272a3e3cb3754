//! Finding the next delimiter eight bytes at a time (SWAR: SIMD within a
//! register). Fields in router logs are short, so `memchr`'s vector set-up
//! rarely pays off, while a byte loop costs a branch per byte.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that equals `b`. Exact for the lowest
/// flagged byte (bytes above it may be false positives from borrows), which is
/// all [`find2`] and [`find3`] use.
#[inline(always)]
fn eq_mask(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x & HI
}

#[inline(always)]
fn load(h: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&h[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Index of the first byte equal to `a` or `b`.
#[inline]
pub fn find2(h: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= h.len() {
        let w = load(h, i);
        let m = eq_mask(w, a) | eq_mask(w, b);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    h[i..].iter().position(|&c| c == a || c == b).map(|p| i + p)
}

/// Index of the first byte equal to `a`, `b` or `c`.
#[inline]
pub fn find3(h: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= h.len() {
        let w = load(h, i);
        let m = eq_mask(w, a) | eq_mask(w, b) | eq_mask(w, c);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    h[i..]
        .iter()
        .position(|&x| x == a || x == b || x == c)
        .map(|p| i + p)
}

/// Index of the first byte equal to `a`.
#[inline]
pub fn find1(h: &[u8], a: u8) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= h.len() {
        let m = eq_mask(load(h, i), a);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    h[i..].iter().position(|&x| x == a).map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agrees_with_a_byte_loop(h in proptest::collection::vec(any::<u8>(), 0..80), a: u8, b: u8, c: u8) {
            prop_assert_eq!(find1(&h, a), h.iter().position(|&x| x == a));
            prop_assert_eq!(find2(&h, a, b), h.iter().position(|&x| x == a || x == b));
            prop_assert_eq!(find3(&h, a, b, c), h.iter().position(|&x| x == a || x == b || x == c));
        }
    }

    #[test]
    fn borrow_false_positives_do_not_matter() {
        // 0x01 after a matching byte is the classic false positive of this trick.
        let h = [b'x', b'"', 0x01, b'"', 0, 0, 0, 0, 0];
        assert_eq!(find1(&h, b'"'), Some(1));
        assert_eq!(find1(&[0x22, 0x01, 0, 0, 0, 0, 0, 0], 0x21), None);
    }
}
