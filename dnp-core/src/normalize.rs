//! Cross-service name matching: normalized artist names and featured artists named in
//! track titles ("Song (feat. A & B)").
//!
//! Services spell the same artist differently ("Beyoncé", "Beyonce", "BEYONCÉ"): names are
//! compared after [`normalize_name`], which folds case, strips diacritics and punctuation
//! and collapses spaces. A title's featured artists are found by [`featured_in_title`].
//!
//! # Band names in credit lists
//! A credit list ("A, B & C") is split at its separators, but some artists' names contain
//! one: "Simon & Garfunkel", "Earth, Wind & Fire", "Hall & Oates", "AC/DC". Given the
//! names it should know ([`KnownNames`]: the planner passes its
//! [`BlockedSet`](crate::BlockedSet), the DNP list's names and aliases), a splitter keeps
//! a run of pieces whole when that run, as a whole, is a known name:
//! [`split_credits`] and [`featured_in_title_with`]. Feature markers ("feat.", "ft.",
//! "featuring", "with") always split.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Names that each name one artist, though they may contain a list separator ("Simon &
/// Garfunkel"): splitting a credit list keeps them whole ([`split_credits`]).
///
/// Implemented by [`BlockedSet`](crate::BlockedSet) (the DNP list's names and aliases),
/// by sets and slices of normalized names, and by [`NoKnownNames`].
pub trait KnownNames {
    /// Whether `normalized`, a [`normalize_name`] result, is a known name.
    fn contains_normalized(&self, normalized: &str) -> bool;

    /// A cheap test of raw (not normalized) text that is never `false` when
    /// `normalize_name(raw)` is a known name, so a splitter can skip normalizing text that
    /// cannot be one. The default says `true`.
    fn may_contain_raw(&self, raw: &str) -> bool {
        let _ = raw;
        true
    }
}

/// No name is known: every separator splits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoKnownNames;

impl KnownNames for NoKnownNames {
    fn contains_normalized(&self, _normalized: &str) -> bool {
        false
    }

    fn may_contain_raw(&self, _raw: &str) -> bool {
        false
    }
}

impl<S: BuildHasher> KnownNames for HashSet<String, S> {
    fn contains_normalized(&self, normalized: &str) -> bool {
        self.contains(normalized)
    }
}

impl KnownNames for BTreeSet<String> {
    fn contains_normalized(&self, normalized: &str) -> bool {
        self.contains(normalized)
    }
}

impl KnownNames for [String] {
    fn contains_normalized(&self, normalized: &str) -> bool {
        self.iter().any(|n| n == normalized)
    }
}

impl KnownNames for [&str] {
    fn contains_normalized(&self, normalized: &str) -> bool {
        self.contains(&normalized)
    }
}

impl<T: KnownNames + ?Sized> KnownNames for &T {
    fn contains_normalized(&self, normalized: &str) -> bool {
        (**self).contains_normalized(normalized)
    }

    fn may_contain_raw(&self, raw: &str) -> bool {
        (**self).may_contain_raw(raw)
    }
}

/// Folds a name for comparison: Unicode compatibility decomposition, diacritics removed,
/// lowercase, `&` read as `and`, dashes and underscores read as spaces, other punctuation
/// dropped, whitespace collapsed.
///
/// ```
/// use dnp_core::normalize::normalize_name;
/// assert_eq!(normalize_name("  Beyoncé "), "beyonce");
/// assert_eq!(normalize_name("Simon & Garfunkel"), "simon and garfunkel");
/// assert_eq!(normalize_name("AC/DC"), "acdc");
/// assert_eq!(normalize_name("Jay-Z"), normalize_name("JAY Z"));
/// ```
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    normalize_name_into(name, &mut out);
    out
}

/// [`normalize_name`] into a buffer the caller reuses (cleared first): no allocation once
/// the buffer is large enough. ASCII names take a fast path with the same result.
pub fn normalize_name_into(name: &str, out: &mut String) {
    out.clear();
    if name.is_ascii() {
        normalize_ascii(name, out);
    } else {
        normalize_unicode(name, out);
    }
}

/// The general path: NFKD, then the folding rules char by char.
fn normalize_unicode(name: &str, out: &mut String) {
    let mut pending_space = false;
    for c in name.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() || matches!(c, '-' | '_' | '\u{2010}'..='\u{2015}' | '\u{2212}') {
            pending_space = !out.is_empty();
            continue;
        }
        if c == '&' {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("and");
            pending_space = true;
            continue;
        }
        if !c.is_alphanumeric() {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
}

/// The ASCII path: NFKD is the identity on ASCII and no ASCII char is a combining mark,
/// so the same rules apply byte by byte.
fn normalize_ascii(name: &str, out: &mut String) {
    let mut pending_space = false;
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(b.to_ascii_lowercase() as char);
        } else if b == b'&' {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("and");
            pending_space = true;
        } else if (b as char).is_whitespace() || b == b'-' || b == b'_' {
            pending_space = !out.is_empty();
        }
    }
}

/// A cheap fingerprint of a normalized name: a hash of its bytes, spaces left out. Equal
/// names have equal fingerprints; [`name_fingerprint`] computes it from the raw name
/// without normalizing it.
pub(crate) fn fingerprint(normalized: &str) -> u64 {
    let mut fp = Fingerprint::default();
    for &b in normalized.as_bytes() {
        if b != b' ' {
            fp.byte(b);
        }
    }
    fp.finish()
}

/// The [`fingerprint`] of `normalize_name(name)`, computed in one pass without writing the
/// normalized name: ASCII bytes directly, other chars through their compatibility
/// decomposition (NFKD's reordering only moves combining marks, which are dropped).
pub(crate) fn name_fingerprint(name: &str) -> u64 {
    let mut fp = Fingerprint::default();
    if name.is_ascii() {
        for &b in name.as_bytes() {
            fp.ascii(b);
        }
    } else {
        for c in name.chars() {
            if c.is_ascii() {
                fp.ascii(c as u8);
            } else {
                unicode_normalization::char::decompose_compatible(c, |d| fp.decomposed(d));
            }
        }
    }
    fp.finish()
}

/// The running hash of a fingerprint: bytes gather into a 64-bit word that is mixed into
/// the hash every 8 bytes (a multiply per word, not per byte).
#[derive(Default)]
struct Fingerprint {
    hash: u64,
    word: u64,
    len: u32,
}

impl Fingerprint {
    fn byte(&mut self, b: u8) {
        self.word = (self.word << 8) | u64::from(b);
        self.len += 1;
        if self.len & 7 == 0 {
            self.mix();
        }
    }

    fn mix(&mut self) {
        self.hash = (self.hash.rotate_left(23) ^ self.word).wrapping_mul(0x517C_C1B7_2722_0A95);
        self.word = 0;
    }

    fn finish(mut self) -> u64 {
        self.word ^= u64::from(self.len) << 56;
        self.mix();
        self.hash
    }

    fn ascii(&mut self, b: u8) {
        if b.is_ascii_alphanumeric() {
            self.byte(b.to_ascii_lowercase());
        } else if b == b'&' {
            self.byte(b'a');
            self.byte(b'n');
            self.byte(b'd');
        }
    }

    fn decomposed(&mut self, d: char) {
        if d.is_ascii() {
            return self.ascii(d as u8);
        }
        if is_combining_mark(d) || !d.is_alphanumeric() {
            return;
        }
        let mut buf = [0u8; 4];
        for lower in d.to_lowercase() {
            for &b in lower.encode_utf8(&mut buf).as_bytes() {
                self.byte(b);
            }
        }
    }
}

/// A hash of a provider id for [`FingerprintFilter`]: FxHash of its bytes.
pub(crate) fn id_hash(id: &str) -> u64 {
    use std::hash::Hasher as _;
    let mut h = rustc_hash::FxHasher::default();
    h.write(id.as_bytes());
    h.finish()
}

/// A set of fingerprints as a 65,536-bit filter: `may_contain` is never wrong when it
/// says no.
#[derive(Debug, Clone)]
pub(crate) struct FingerprintFilter(Box<[u64; 1024]>);

impl Default for FingerprintFilter {
    fn default() -> Self {
        Self(Box::new([0; 1024]))
    }
}

impl FingerprintFilter {
    fn slot(fingerprint: u64) -> (usize, u64) {
        let h = fingerprint.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48;
        ((h >> 6) as usize, 1u64 << (h & 63))
    }

    /// Adds a normalized name.
    pub(crate) fn insert(&mut self, normalized: &str) {
        self.insert_fingerprint(fingerprint(normalized));
    }

    /// Adds a fingerprint (or any 64-bit hash).
    pub(crate) fn insert_fingerprint(&mut self, fingerprint: u64) {
        let (word, bit) = Self::slot(fingerprint);
        self.0[word] |= bit;
    }

    /// Whether a name with this fingerprint may be in the set.
    pub(crate) fn may_contain(&self, fingerprint: u64) -> bool {
        let (word, bit) = Self::slot(fingerprint);
        self.0[word] & bit != 0
    }
}

/// Whether `title` may name featured artists: it contains `feat`, `ft.`, `featuring` or
/// `with` as a word. Cheap (no allocation), so the planner can call it on every track.
pub fn may_name_features(title: &str) -> bool {
    find_feature_marker(title).is_some()
}

/// The artists a title names as featured, normalized: `"Song (feat. A, B & C)"` gives
/// `["a", "b", "c"]`; `"Song [with A]"` gives `["a"]`; a title without a marker gives none.
/// Every separator splits: [`featured_in_title_with`] keeps known band names whole.
///
/// ```
/// use dnp_core::normalize::featured_in_title;
/// assert_eq!(featured_in_title("Work (feat. Drake)"), vec!["drake"]);
/// assert_eq!(featured_in_title("Up ft. A, B & C"), vec!["a", "b", "c"]);
/// assert!(featured_in_title("Without Me").is_empty());
/// ```
pub fn featured_in_title(title: &str) -> Vec<String> {
    featured_in_title_with(title, &NoKnownNames)
}

/// [`featured_in_title`], keeping whole each run of the featured list that is a known name.
///
/// ```
/// use std::collections::BTreeSet;
/// use dnp_core::normalize::{featured_in_title_with, normalize_name};
/// let known: BTreeSet<String> = [normalize_name("Simon & Garfunkel")].into();
/// assert_eq!(featured_in_title_with("Song (feat. Simon & Garfunkel)", &known), vec!["simon and garfunkel"]);
/// assert_eq!(featured_in_title_with("Song (feat. Simon & Drake)", &known), vec!["simon", "drake"]);
/// ```
pub fn featured_in_title_with(title: &str, known: &(impl KnownNames + ?Sized)) -> Vec<String> {
    let mut names = Vec::new();
    for_each_featured_in_title(title, known, &mut String::new(), |name| names.push(name.to_owned()));
    names
}

/// [`featured_in_title_with`] without allocating: calls `f` with each normalized name,
/// which lives in `buf` (reused) for the duration of the call.
pub(crate) fn for_each_featured_in_title(
    title: &str,
    known: &(impl KnownNames + ?Sized),
    buf: &mut String,
    f: impl FnMut(&str),
) {
    let Some((_, after)) = find_feature_marker(title) else {
        return;
    };
    let rest = &title[after..];
    let end = rest.find([')', ']', '}']).unwrap_or(rest.len());
    let end = rest[..end].find(" - ").unwrap_or(end);
    for_each_listed(&rest[..end], known, buf, f);
}

/// Splits a credit list ("A, B & C", "A x B", "A and B", "A feat. B") into normalized
/// names at every separator. [`split_credits`] keeps known band names whole.
pub fn split_artist_list(list: &str) -> Vec<String> {
    split_credits(list, &NoKnownNames)
}

/// Splits a credit string into normalized artist names, keeping known names whole.
///
/// # Behavior
/// - Feature markers (`feat.`, `feat`, `ft.`, `featuring`, `with`, any case, as words)
///   always split: `"A feat. B & C"` gives `a`, `b`, `c` when no name is known.
/// - The pieces between `&`, `,`, `and`, `x`, `/` and `;` are read left to right; at each
///   piece the longest run of pieces (up to 8, not across a feature marker) that as a whole
///   is a known name is one name; a piece in no such run is a name alone. So
///   `"Simon & Garfunkel"` stays whole when it is known, and `"Art Garfunkel"` is never
///   found in it.
/// - Names are [normalized](normalize_name); empty pieces are left out.
///
/// ```
/// use dnp_core::normalize::{NoKnownNames, normalize_name, split_credits};
/// let known = [normalize_name("Earth, Wind & Fire")];
/// assert_eq!(split_credits("Earth, Wind & Fire feat. Drake", &known[..]), ["earth wind and fire", "drake"]);
/// assert_eq!(split_credits("Earth, Wind & Fire", &NoKnownNames), ["earth", "wind", "fire"]);
/// ```
pub fn split_credits(list: &str, known: &(impl KnownNames + ?Sized)) -> Vec<String> {
    let mut names = Vec::new();
    for_each_listed(list, known, &mut String::new(), |name| names.push(name.to_owned()));
    names
}

/// The most pieces a known name may span ("Crosby, Stills, Nash & Young" spans four).
const MAX_RUN: usize = 8;

/// [`split_credits`] without allocating: calls `f` with each non-empty normalized name,
/// which lives in `buf` (reused) for the duration of the call.
pub(crate) fn for_each_listed(
    list: &str,
    known: &(impl KnownNames + ?Sized),
    buf: &mut String,
    mut f: impl FnMut(&str),
) {
    let mut start = 0;
    loop {
        // The pieces from `start`: where each ends, where the next begins (`None` after
        // the last), up to the first feature marker.
        let mut ends = [(0usize, None::<usize>); MAX_RUN];
        let mut pieces = 0;
        let mut at = start;
        while pieces < MAX_RUN {
            match next_separator(&list[at..]) {
                Some((i, len, hard)) => {
                    ends[pieces] = (at + i, Some(at + i + len));
                    pieces += 1;
                    at += i + len;
                    if hard {
                        break;
                    }
                }
                None => {
                    ends[pieces] = (list.len(), None);
                    pieces += 1;
                    break;
                }
            }
        }
        // The longest run that is a known name, else the first piece alone.
        let mut next = ends[0].1;
        let mut found = false;
        for &(end, after) in ends[1..pieces].iter().rev() {
            let run = &list[start..end];
            if known.may_contain_raw(run) {
                normalize_name_into(run, buf);
                if !buf.is_empty() && known.contains_normalized(buf) {
                    f(buf);
                    next = after;
                    found = true;
                    break;
                }
            }
        }
        if !found {
            normalize_name_into(&list[start..ends[0].0], buf);
            if !buf.is_empty() {
                f(buf);
            }
        }
        match next {
            Some(n) => start = n,
            None => break,
        }
    }
}

/// The first separator of a credit list: (byte index, length, whether it is a feature
/// marker). One pass; shorter separators first where two would start at the same index.
/// A feature marker is a space, an optional `(` or `[`, then `featuring`, `feat.`, `feat`,
/// `ft.` or `with` (any case) and a space.
fn next_separator(s: &str) -> Option<(usize, usize, bool)> {
    const SEPARATORS: [&[u8]; 7] = [b"/", b";", b", ", b" & ", b" x ", b" X ", b" and "];
    const MARKERS: [&[u8]; 5] = [b"featuring ", b"feat. ", b"feat ", b"ft. ", b"with "];
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        if !matches!(bytes[i], b'/' | b';' | b',' | b' ') {
            continue;
        }
        if let Some(sep) = SEPARATORS.iter().find(|sep| bytes[i..].starts_with(sep)) {
            return Some((i, sep.len(), false));
        }
        if bytes[i] != b' ' {
            continue;
        }
        let word = if matches!(bytes.get(i + 1), Some(b'(' | b'[')) { i + 2 } else { i + 1 };
        let rest = &bytes[word.min(bytes.len())..];
        let marker = MARKERS
            .iter()
            .find(|m| rest.len() >= m.len() && rest.iter().zip(m.iter()).all(|(b, m)| b.to_ascii_lowercase() == *m));
        if let Some(m) = marker {
            return Some((i, word - i + m.len(), true));
        }
    }
    None
}

/// Finds a feature marker; returns (start of marker, first byte after it).
fn find_feature_marker(title: &str) -> Option<(usize, usize)> {
    const MARKERS: [&[u8]; 5] = [b"featuring ", b"feat. ", b"feat ", b"ft. ", b"with "];
    let bytes = title.as_bytes();
    for i in 0..bytes.len() {
        let b = bytes[i] | 0x20;
        if b != b'f' && b != b'w' {
            continue;
        }
        let word_start = i == 0 || matches!(bytes[i - 1], b' ' | b'(' | b'[' | b'{');
        if !word_start {
            continue;
        }
        for marker in MARKERS {
            let end = i + marker.len();
            if end <= bytes.len() && bytes[i..end].iter().zip(marker).all(|(a, m)| a.to_ascii_lowercase() == *m) {
                // "with" only counts inside brackets: "Dancing with Myself" names no one.
                if marker[0] == b'w' && !(i > 0 && matches!(bytes[i - 1], b'(' | b'[')) {
                    continue;
                }
                return Some((i, end));
            }
        }
    }
    None
}

/// How sure a search hit named `found` is the artist the user typed as `wanted`: 1.0 for
/// the same normalized name, 0.5 to 0.9 for a name that contains the other (more the closer
/// their lengths), 0.3 otherwise (the service's own ranking still orders those), 0.0 when
/// either is empty. Every adapter's `search_artists` uses it, so confidences compare across
/// services.
///
/// ```
/// use dnp_core::normalize::name_confidence;
/// assert_eq!(name_confidence("Beyonce", "Beyoncé"), 1.0);
/// assert_eq!(name_confidence("Drake", "Nothing Alike"), 0.3);
/// ```
pub fn name_confidence(wanted: &str, found: &str) -> f32 {
    let (a, b) = (normalize_name(wanted), normalize_name(found));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a == b {
        return 1.0;
    }
    if a.contains(&b) || b.contains(&a) {
        let (short, long) = if a.len() < b.len() { (a.len(), b.len()) } else { (b.len(), a.len()) };
        return 0.5 + 0.4 * short as f32 / long as f32;
    }
    0.3
}

/// Whether `isrc` has the shape of an ISRC: 12 ASCII letters and digits.
pub fn is_isrc(isrc: &str) -> bool {
    isrc.len() == 12 && isrc.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_outside_brackets_is_not_a_feature() {
        assert!(featured_in_title("Dancing with Myself").is_empty());
        assert_eq!(featured_in_title("Dance (with Robyn)"), vec!["robyn"]);
    }

    #[test]
    fn feature_marker_needs_a_word_start() {
        assert!(featured_in_title("Leftfeat. nothing").is_empty());
        assert_eq!(featured_in_title("FEAT. Someone"), vec!["someone"]);
    }

    #[test]
    fn trailing_version_is_not_a_name() {
        assert_eq!(featured_in_title("Song (feat. A) - Remastered"), vec!["a"]);
        assert_eq!(featured_in_title("Song feat. A - Live"), vec!["a"]);
    }

    #[test]
    fn unicode_dashes_separate_like_ascii_ones() {
        assert_eq!(normalize_name("Jay\u{2010}Z"), "jay z");
        assert_eq!(normalize_name("Jay\u{2011}Z"), "jay z");
        assert_eq!(normalize_name("A \u{2014} B"), "a b");
    }

    #[test]
    fn ascii_fast_path_matches_the_general_path() {
        let samples = [
            "",
            " ",
            "&",
            "A&B",
            " & x",
            "AC/DC",
            "Jay-Z",
            "  Simon  &  Garfunkel ",
            "a\x0bb",
            "MF DOOM!!",
            "__init__",
            "-lead",
            "trail-",
            "Panic! at the Disco",
            "t.A.T.u.",
            "50 Cent",
            "a\tb\nc\rd",
            "A & & B",
        ];
        for s in samples {
            let mut general = String::new();
            normalize_unicode(s, &mut general);
            let mut fast = String::new();
            normalize_ascii(s, &mut fast);
            assert_eq!(fast, general, "{s:?}");
        }
        // Every ASCII byte alone and between letters.
        for b in 0u8..128 {
            let s = format!("x{}y{}", b as char, b as char);
            let mut general = String::new();
            normalize_unicode(&s, &mut general);
            let mut fast = String::new();
            normalize_ascii(&s, &mut fast);
            assert_eq!(fast, general, "byte {b}");
        }
    }

    #[test]
    fn name_fingerprint_is_that_of_the_normalized_name() {
        let samples = [
            "",
            "&",
            "A&B",
            "AC/DC",
            "Jay-Z",
            "  Simon  &  Garfunkel ",
            "MF DOOM!!",
            "t.A.T.u.",
            "50 Cent",
            "Beyoncé",
            "Sigur Rós",
            "Motörhead",
            "ＢＴＳ",
            "Ｊａｙ－Ｚ",
            "İbrahim",
            "Mötley Crüe",
            "방탄소년단",
            "ﬁve",
            "½ Japanese",
            "Ǆemal",
            "Ω",
            "K\u{212A}",
            "e\u{301}\u{302}x",
            "Jay\u{2011}Z",
            "A ＆ B",
        ];
        for s in samples {
            assert_eq!(name_fingerprint(s), fingerprint(&normalize_name(s)), "{s:?}");
        }
        for b in 0u8..128 {
            let s = format!("Ab{}c{}", b as char, b as char);
            assert_eq!(name_fingerprint(&s), fingerprint(&normalize_name(&s)), "byte {b}");
        }
    }

    proptest::proptest! {
        /// The planner rules names out by fingerprint: a wrong one would hide a match.
        #[test]
        fn name_fingerprint_agrees_with_normalize_name(s in "\\PC{0,24}") {
            proptest::prop_assert_eq!(name_fingerprint(&s), fingerprint(&normalize_name(&s)));
        }

        #[test]
        fn ascii_fast_path_agrees_with_the_general_path(s in "[ -~\\t\\n\\x0b]{0,24}") {
            let mut general = String::new();
            normalize_unicode(&s, &mut general);
            let mut fast = String::new();
            normalize_ascii(&s, &mut fast);
            proptest::prop_assert_eq!(fast, general);
        }
    }

    #[test]
    fn the_filter_never_says_no_to_a_member() {
        let mut filter = FingerprintFilter::default();
        let names: Vec<String> = (0..5000).map(|i| normalize_name(&format!("Artist Number {i}"))).collect();
        for n in &names {
            filter.insert(n);
        }
        assert!(names.iter().all(|n| filter.may_contain(fingerprint(n))));
        let outsiders = (0..5000).filter(|i| filter.may_contain(fingerprint(&format!("zz other {i} name")))).count();
        // 5,000 of 65,536 bits set: about 7% of outsiders pass.
        assert!(outsiders < 600, "the filter lets {outsiders} of 5000 outsiders through");
    }

    #[test]
    fn artist_lists_split_on_every_separator() {
        assert_eq!(
            split_artist_list("A, B & C and D x E X F with G/H;I"),
            ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        );
        assert_eq!(split_artist_list("Andy Axe"), ["andy axe"]);
        assert!(split_artist_list(" , ").is_empty());
    }

    fn known(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| normalize_name(n)).collect()
    }

    /// Regression: "feat. Simon & Garfunkel" was split into "simon" and "garfunkel", so
    /// the DNP list's "Simon & Garfunkel" never matched it.
    #[test]
    fn a_known_band_name_is_not_split() {
        let bands = known(&["Simon & Garfunkel", "Earth, Wind & Fire", "Hall & Oates", "AC/DC"]);
        assert_eq!(split_credits("Simon & Garfunkel", &bands), ["simon and garfunkel"]);
        assert_eq!(split_credits("Earth, Wind & Fire", &bands), ["earth wind and fire"]);
        assert_eq!(split_credits("Daryl Hall and John Oates", &bands), ["daryl hall", "john oates"]);
        assert_eq!(split_credits("Hall & Oates, AC/DC & Drake", &bands), ["hall and oates", "acdc", "drake"]);
        assert_eq!(
            split_credits("Drake, Earth, Wind & Fire & Future", &bands),
            ["drake", "earth wind and fire", "future"]
        );
        assert_eq!(featured_in_title_with("Song (feat. Simon & Garfunkel)", &bands), ["simon and garfunkel"]);
        assert_eq!(featured_in_title_with("Song ft. Earth, Wind & Fire - Live", &bands), ["earth wind and fire"]);
        // Without the names, every separator splits, as before.
        assert_eq!(split_artist_list("Simon & Garfunkel"), ["simon", "garfunkel"]);
        assert_eq!(featured_in_title("Song (feat. Earth, Wind & Fire)"), ["earth", "wind", "fire"]);
    }

    #[test]
    fn the_longest_known_run_wins() {
        let names = known(&["Crosby, Stills & Nash", "Crosby, Stills, Nash & Young", "Simon"]);
        assert_eq!(split_credits("Crosby, Stills, Nash & Young", &names), ["crosby stills nash and young"]);
        assert_eq!(split_credits("Crosby, Stills & Nash & Simon", &names), ["crosby stills and nash", "simon"]);
        // A member's name known alone does not break the band's name, nor the band's his.
        let names = known(&["Simon & Garfunkel", "Simon"]);
        assert_eq!(split_credits("Simon & Garfunkel", &names), ["simon and garfunkel"]);
        assert_eq!(split_credits("Simon & Drake", &names), ["simon", "drake"]);
    }

    #[test]
    fn a_feature_marker_always_splits() {
        let none = NoKnownNames;
        assert_eq!(split_credits("A feat. B & C", &none), ["a", "b", "c"]);
        assert_eq!(split_credits("A FT. B, C", &none), ["a", "b", "c"]);
        assert_eq!(split_credits("A (featuring B and C)", &none), ["a", "b", "c"]);
        assert_eq!(split_credits("A [with B]", &none), ["a", "b"]);
        // Even when the text around the marker is a known name.
        let names = known(&["A feat B", "B & C"]);
        assert_eq!(split_credits("A feat. B & C", &names), ["a", "b and c"]);
        // "feat" inside a word is no marker.
        assert_eq!(split_credits("Defeat Feature", &none), ["defeat feature"]);
    }

    #[test]
    fn known_names_fold_case_and_diacritics() {
        let names = known(&["Simon & Garfunkel", "Beyoncé"]);
        assert_eq!(split_credits("SIMÓN AND GARFUNKEL & beyonce", &names), ["simon and garfunkel", "beyonce"]);
        let slice: &[&str] = &["simon and garfunkel"];
        assert_eq!(split_credits("simon & GARFUNKEL", slice), ["simon and garfunkel"]);
    }

    /// A name from the pool: (as written, normalized, pieces when split at every separator).
    const POOL: [(&str, &str); 10] = [
        ("Simon & Garfunkel", "simon and garfunkel"),
        ("Earth, Wind & Fire", "earth wind and fire"),
        ("Hall & Oates", "hall and oates"),
        ("AC/DC", "acdc"),
        ("Crosby, Stills, Nash & Young", "crosby stills nash and young"),
        ("Beyoncé", "beyonce"),
        ("Drake", "drake"),
        ("Sigur Rós", "sigur ros"),
        ("Jay-Z", "jay z"),
        ("Rosalía", "rosalia"),
    ];

    proptest::proptest! {
        /// Lists made of pool names joined by any separator or feature marker give back
        /// exactly the names used when the pool is known, and every piece when nothing is.
        #[test]
        fn split_credits_gives_back_the_names_a_list_was_made_of(
            parts in proptest::collection::vec((0..POOL.len(), 0..9usize), 1..6)
        ) {
            const JOINS: [&str; 9] = [", ", " & ", " and ", " x ", "/", "; ", " feat. ", " ft. ", " with "];
            let mut list = String::new();
            for (n, (name, join)) in parts.iter().enumerate() {
                if n > 0 {
                    list.push_str(JOINS[*join]);
                }
                list.push_str(POOL[*name].0);
            }
            let pool: BTreeSet<String> = POOL.iter().map(|(_, n)| (*n).to_owned()).collect();
            let wanted: Vec<&str> = parts.iter().map(|(name, _)| POOL[*name].1).collect();
            proptest::prop_assert_eq!(split_credits(&list, &pool), wanted);
            let pieces: Vec<String> = parts
                .iter()
                .flat_map(|(name, _)| POOL[*name].0.split([',', '&', '/']).map(normalize_name))
                .collect();
            proptest::prop_assert_eq!(split_credits(&list, &NoKnownNames), pieces);
        }
    }

    #[test]
    fn into_reuses_and_clears_the_buffer() {
        let mut buf = String::from("stale content");
        normalize_name_into("Beyoncé", &mut buf);
        assert_eq!(buf, "beyonce");
        normalize_name_into("Drake", &mut buf);
        assert_eq!(buf, "drake");
    }

    #[test]
    fn diacritics_and_case_fold() {
        assert_eq!(normalize_name("SIGUR RÓS"), normalize_name("Sigur Ros"));
        assert_eq!(normalize_name("Motörhead"), "motorhead");
    }
}
