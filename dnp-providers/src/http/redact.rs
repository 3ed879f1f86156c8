//! Keeping tokens and query strings out of errors and logs.
//!
//! Query strings carry ids, search terms and, at some services, tokens; the `Authorization`
//! header carries the access token. Neither is ever logged or put in an error: URLs are
//! shown as scheme, host and path only, and free text from lower layers goes through
//! [`redact_text`].

use url::Url;

/// `scheme://host[:port]/path`: the URL without user info, query or fragment.
///
/// ```
/// let url = url::Url::parse("https://user:pw@api.example.com/v1/me?access_token=abc#x").unwrap();
/// assert_eq!(dnp_providers::http::redact_url(&url), "https://api.example.com/v1/me");
/// ```
pub fn redact_url(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    out
}

/// Removes what may be secret from free text (an error message of a lower layer): the
/// query string and fragment of every URL, the word after `Bearer`, and the value of
/// any `token`, `code`, `secret` or `verifier` parameter.
///
/// ```
/// let text = "failed for https://x.test/a?access_token=s3cr3t: Bearer abc.def token=zzz";
/// let clean = dnp_providers::http::redact_text(text);
/// assert!(!clean.contains("s3cr3t") && !clean.contains("abc.def") && !clean.contains("zzz"));
/// ```
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut redact_next = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if redact_next && !word.is_empty() {
            out.push_str("[redacted]");
            redact_next = false;
            continue;
        }
        if word.eq_ignore_ascii_case("bearer") {
            redact_next = true;
            out.push_str(word);
            continue;
        }
        out.push_str(&redact_word(word));
    }
    out
}

fn redact_word(word: &str) -> String {
    if word.contains("://")
        && let Some(q) = word.find(['?', '#'])
    {
        // Keep trailing punctuation that is not part of the URL (`...?a=b):`).
        let tail: String = word[q..].chars().rev().take_while(|c| matches!(c, ')' | ':' | ',' | '.' | ']')).collect();
        let tail: String = tail.chars().rev().collect();
        return format!("{}{}", &word[..q], tail);
    }
    let lower = word.to_ascii_lowercase();
    for key in ["token", "code", "secret", "verifier", "password"] {
        if let Some(at) = lower.find(key) {
            let rest = &word[at + key.len()..];
            if let Some(eq) = rest.find(['=', ':']).filter(|&e| e <= 2) {
                let keep = at + key.len() + eq + 1;
                if keep < word.len() {
                    return format!("{}[redacted]", &word[..keep]);
                }
            }
        }
    }
    word.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_query_fragment_and_user_info() {
        let url = Url::parse("http://u:p@127.0.0.1:8080/v1/search?q=isrc:GB123&type=track#f").unwrap();
        assert_eq!(redact_url(&url), "http://127.0.0.1:8080/v1/search");
    }

    #[test]
    fn text_loses_query_strings_and_tokens() {
        let clean = redact_text("error sending request for url (https://api.test/v1/me?token=abc): refresh_token=def");
        assert_eq!(clean, "error sending request for url (https://api.test/v1/me): refresh_token=[redacted]");
        assert_eq!(redact_text("Authorization: Bearer xyz123"), "Authorization: Bearer [redacted]");
        assert_eq!(redact_text("nothing secret here"), "nothing secret here");
    }
}
