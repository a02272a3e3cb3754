//! The keys of the series maps: app ids and instance names.
//!
//! Two lookups per record, in maps the decoder's stream of bytes keeps
//! pushing out of the cache: a key behind a pointer cost a second cache
//! miss per lookup (measured: most of the lookup's time). Keys up to
//! [`INLINE`] bytes — app GUIDs (36), instance indexes, pod names — sit in
//! the map's slot itself, so a hit reads one place; an instance is found
//! with its app in one probe ([`PairKey`]).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;

/// The longest key kept inline; the enum is then 40 bytes.
const INLINE: usize = 38;

#[derive(Clone)]
pub(super) enum SeriesKey {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl SeriesKey {
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            SeriesKey::Inline { len, bytes } => &bytes[..usize::from(*len).min(INLINE)],
            SeriesKey::Heap(s) => s.as_bytes(),
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // Bytes copied whole from a `&str`: always valid.
            SeriesKey::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            SeriesKey::Heap(s) => s,
        }
    }
}

impl From<&str> for SeriesKey {
    fn from(s: &str) -> SeriesKey {
        let b = s.as_bytes();
        if b.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            SeriesKey::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            SeriesKey::Heap(s.into())
        }
    }
}

impl std::fmt::Debug for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &SeriesKey) -> bool {
        same_bytes(self.as_bytes(), other.as_bytes())
    }
}

impl Eq for SeriesKey {}

impl Hash for SeriesKey {
    /// Exactly as the `str` hashes: maps are looked up by `&str` too.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for SeriesKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// Looks up a [`SeriesKey`] by `&str` with an inlined comparison (a
/// `memcmp` call costs more than comparing a 36-byte GUID).
#[derive(Clone, Copy)]
pub(super) struct Lookup<'a>(pub &'a str);

impl Hash for Lookup<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Equivalent<SeriesKey> for Lookup<'_> {
    #[inline]
    fn equivalent(&self, key: &SeriesKey) -> bool {
        same_bytes(self.0.as_bytes(), key.as_bytes())
    }
}

/// An instance series' key: its app and its instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PairKey {
    pub app: SeriesKey,
    pub instance: SeriesKey,
}

impl Hash for PairKey {
    /// Exactly as [`PairLookup`] hashes.
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.app.as_str(), self.instance.as_str()).hash(state);
    }
}

/// Looks up a [`PairKey`] by `&str`s: one probe finds both series of a
/// record (app and instance).
#[derive(Clone, Copy)]
pub(super) struct PairLookup<'a>(pub &'a str, pub &'a str);

impl Hash for PairLookup<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0, self.1).hash(state);
    }
}

impl Equivalent<PairKey> for PairLookup<'_> {
    #[inline]
    fn equivalent(&self, key: &PairKey) -> bool {
        same_bytes(self.1.as_bytes(), key.instance.as_bytes())
            && same_bytes(self.0.as_bytes(), key.app.as_bytes())
    }
}

/// Equal bytes, compared eight at a time.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    let word = |c: &[u8]| c.try_into().map_or(0, u64::from_ne_bytes);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if word(x) != word(y) {
            return false;
        }
    }
    ca.remainder()
        .iter()
        .zip(cb.remainder())
        .all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::BuildHasher;

    proptest! {
        /// Short and long keys, ASCII and not: the key reads back as
        /// written, equals what it was made from, and hashes like it.
        #[test]
        fn a_key_is_its_text(text in "\\PC{0,60}", other in "\\PC{0,60}") {
            let key = SeriesKey::from(text.as_str());
            prop_assert_eq!(key.as_str(), text.as_str());
            prop_assert!(Lookup(&text).equivalent(&key));
            prop_assert_eq!(Lookup(&other).equivalent(&key), other == text);
            let state = foldhash::fast::FixedState::default();
            prop_assert_eq!(state.hash_one(&key), state.hash_one(text.as_str()));
            prop_assert_eq!(state.hash_one(Lookup(&text)), state.hash_one(text.as_str()));
            let pair = PairKey { app: key.clone(), instance: SeriesKey::from(other.as_str()) };
            prop_assert!(PairLookup(&text, &other).equivalent(&pair));
            prop_assert_eq!(PairLookup(&other, &text).equivalent(&pair), other == text);
            prop_assert_eq!(state.hash_one(&pair), state.hash_one(PairLookup(&text, &other)));
        }
    }

    #[test]
    fn guids_are_inline_and_longer_keys_are_not() {
        let guid = "4bc1e731-918f-63b8-8024-ce67d0582307";
        assert!(matches!(
            SeriesKey::from(guid),
            SeriesKey::Inline { len: 36, .. }
        ));
        let pod = "checkout-7d9f8b6c5d-x2x9z-with-a-long-suffix";
        assert!(matches!(SeriesKey::from(pod), SeriesKey::Heap(_)));
        assert_eq!(std::mem::size_of::<SeriesKey>(), 40);
    }
}
