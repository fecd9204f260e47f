//! Keeping credentials out of every message, cause and log line.
//!
//! Two kinds of secret reach error text: values we were configured with (secret keys, session
//! tokens, SAS tokens, service-account keys), which are registered here when a store is built,
//! and URL query strings (presigned signatures, SAS), which are cut from any URL in the text.

use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

const REDACTED: &str = "<redacted>";

/// Remember a secret so that [`scrub`] removes it from any text. Short values are ignored: they
/// cannot be told apart from ordinary words and are no secret worth the name.
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < 6 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so a secret containing another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Whether a configuration key names a credential whose value must never be shown.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "sas",
        "signature",
        "credential",
        "private_key",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.ends_with("access_key")
        || k.ends_with("account_key")
        || k.ends_with("service_account_key")
        || k == "key"
}

/// Elements of S3's and Azure's XML error bodies whose values are secrets or let one check a
/// guessed secret (S3's SignatureDoesNotMatch echoes the signature, the string it signed and the
/// canonical request; Azure's AuthenticationFailed puts the request's MAC and the string it
/// signed in AuthenticationErrorDetail).
const SECRET_ELEMENTS: &[&str] = &[
    "AuthenticationErrorDetail",
    "SignatureProvided",
    "StringToSign",
    "StringToSignBytes",
    "CanonicalRequest",
    "CanonicalRequestBytes",
    "AWSAccessKeyId",
];

/// Remove registered secrets, secret XML element values, URL user-info and URL query strings
/// from `text`. The marker appears once where several removals meet.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    {
        let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
    }
    for name in SECRET_ELEMENTS {
        out = scrub_element(&out, name);
    }
    collapse(&strip_url_queries(&out))
}

/// `<Name>value</Name>` → `<Name><redacted></Name>` (an unterminated one to the end of text).
fn scrub_element(text: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let after = i + open.len();
        out.push_str(&rest[..after]);
        out.push_str(REDACTED);
        rest = match rest[after..].find(&close) {
            Some(j) => &rest[after + j..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// `<redacted><redacted>` → `<redacted>`.
fn collapse(text: &str) -> String {
    let twice = format!("{REDACTED}{REDACTED}");
    let mut out = text.to_string();
    while out.contains(&twice) {
        out = out.replace(&twice, REDACTED);
    }
    out
}

/// `scheme://user:pass@host/…` → `scheme://host/…`.
fn without_userinfo(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{}{}", &url[..i + 3], &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// A URL as it may be shown: no user-info, no query string.
pub fn url_for_display(url: &str) -> String {
    let mut shown = without_userinfo(url);
    if let Some(q) = shown.find('?') {
        shown.truncate(q);
        shown.push('?');
        shown.push_str(REDACTED);
    }
    scrub_secrets_only(&shown)
}

fn scrub_secrets_only(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        out = out.replace(s.as_str(), REDACTED);
    }
    out
}

/// Cut the query string of every http(s) URL that appears in `text`.
fn strip_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url_start(rest) {
        out.push_str(&rest[..start]);
        let url_part = &rest[start..];
        let end = url_part
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | '`'))
            .unwrap_or(url_part.len());
        let url = without_userinfo(&url_part[..end]);
        let url = url.as_str();
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push('?');
                out.push_str(REDACTED);
            }
            None => out.push_str(url),
        }
        rest = &url_part[end..];
    }
    out.push_str(rest);
    out
}

fn find_url_start(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_removed() {
        register_secret("SENTINEL-abc-123456");
        let s = scrub("signature by SENTINEL-abc-123456 failed");
        assert_eq!(s, "signature by <redacted> failed");
    }

    #[test]
    fn url_queries_are_cut() {
        let s = scrub("GET https://h:1/b/k?X-Amz-Signature=deadbeef&x=1 failed (http://a/b)");
        assert_eq!(s, "GET https://h:1/b/k?<redacted> failed (http://a/b)");
    }

    #[test]
    fn s3_error_bodies_and_userinfo_are_scrubbed_with_one_marker() {
        let body = "403: <Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n20260101T000000Z\nscope\nabc</StringToSign><SignatureProvided>deadbeefcafe</SignatureProvided><CanonicalRequest>GET\n/b/k</CanonicalRequest></Error>";
        let s = scrub(body);
        for secret in [
            "AKIAEXAMPLE",
            "deadbeefcafe",
            "20260101T000000Z",
            "GET\n/b/k",
        ] {
            assert!(!s.contains(secret), "{s}");
        }
        assert!(
            s.contains("<SignatureProvided><redacted></SignatureProvided>"),
            "{s}"
        );
        let s = scrub("error sending request for url (http://user:hunter2pw@host:9000/b/k?x=1)");
        assert_eq!(
            s,
            "error sending request for url (http://host:9000/b/k?<redacted>)"
        );
        register_secret("SENTINEL-twice-123456");
        let s =
            scrub("SENTINEL-twice-123456SENTINEL-twice-123456 http://h/k?SENTINEL-twice-123456");
        assert!(!s.contains("<redacted><redacted>"), "{s}");
    }

    #[test]
    fn azure_authentication_detail_is_scrubbed() {
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message><AuthenticationErrorDetail>The MAC signature found in the HTTP request 'q0b3RkZWFkYmVlZg==' is not the same as any computed signature. Server used following string to sign: 'GET\n\n\n'.</AuthenticationErrorDetail></Error>";
        let s = scrub(body);
        assert!(!s.contains("q0b3RkZWFkYmVlZg=="), "{s}");
        assert!(!s.contains("string to sign"), "{s}");
        assert!(s.contains("<Code>AuthenticationFailed</Code>"), "{s}");
    }

    #[test]
    fn display_url_drops_userinfo_and_query() {
        assert_eq!(
            url_for_display("https://user:pw@host/p?sig=1"),
            "https://host/p?<redacted>"
        );
        assert_eq!(url_for_display("s3://bucket/key"), "s3://bucket/key");
    }

    #[test]
    fn secret_keys_are_recognised() {
        assert!(is_secret_key("aws_secret_access_key"));
        assert!(is_secret_key("azure_storage_account_key"));
        assert!(is_secret_key("google_service_account_key"));
        assert!(is_secret_key("aws_session_token"));
        assert!(!is_secret_key("aws_endpoint"));
        assert!(!is_secret_key("aws_access_key_id"));
    }
}
