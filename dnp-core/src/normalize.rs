//! Cross-service name matching: normalized artist names and featured artists named in
//! track titles ("Song (feat. A & B)").
//!
//! Services spell the same artist differently ("Beyoncé", "Beyonce", "BEYONCÉ"): names are
//! compared after [`normalize_name`], which folds case, strips diacritics and punctuation
//! and collapses spaces. A title's featured artists are found by [`featured_in_title`].

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Folds a name for comparison: Unicode compatibility decomposition, diacritics removed,
/// lowercase, `&` read as `and`, punctuation dropped, whitespace collapsed.
///
/// ```
/// use dnp_core::normalize::normalize_name;
/// assert_eq!(normalize_name("  Beyoncé "), "beyonce");
/// assert_eq!(normalize_name("Simon & Garfunkel"), "simon and garfunkel");
/// assert_eq!(normalize_name("AC/DC"), "acdc");
/// ```
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_space = false;
    for c in name.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() || c == '-' || c == '_' {
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
    out
}

/// Whether `title` may name featured artists: it contains `feat`, `ft.`, `featuring` or
/// `with` as a word. Cheap (no allocation), so the planner can call it on every track.
pub fn may_name_features(title: &str) -> bool {
    find_feature_marker(title).is_some()
}

/// The artists a title names as featured, normalized: `"Song (feat. A, B & C)"` gives
/// `["a", "b", "c"]`; `"Song [with A]"` gives `["a"]`; a title without a marker gives none.
///
/// ```
/// use dnp_core::normalize::featured_in_title;
/// assert_eq!(featured_in_title("Work (feat. Drake)"), vec!["drake"]);
/// assert_eq!(featured_in_title("Up ft. A, B & C"), vec!["a", "b", "c"]);
/// assert!(featured_in_title("Without Me").is_empty());
/// ```
pub fn featured_in_title(title: &str) -> Vec<String> {
    let Some((_, after)) = find_feature_marker(title) else {
        return Vec::new();
    };
    let rest = &title[after..];
    let end = rest.find([')', ']', '}']).unwrap_or(rest.len());
    let end = rest[..end].find(" - ").unwrap_or(end);
    split_artist_list(&rest[..end])
}

/// Splits a credit list ("A, B & C", "A x B", "A and B") into normalized names.
pub fn split_artist_list(list: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = list;
    loop {
        let next = [", ", " & ", " and ", " x ", " X ", " with ", "/", ";"]
            .iter()
            .filter_map(|sep| rest.find(sep).map(|i| (i, sep.len())))
            .min();
        let (piece, tail) = match next {
            Some((i, len)) => (&rest[..i], Some(&rest[i + len..])),
            None => (rest, None),
        };
        let name = normalize_name(piece);
        if !name.is_empty() {
            names.push(name);
        }
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
    names
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
    fn diacritics_and_case_fold() {
        assert_eq!(normalize_name("SIGUR RÓS"), normalize_name("Sigur Ros"));
        assert_eq!(normalize_name("Motörhead"), "motorhead");
    }
}
