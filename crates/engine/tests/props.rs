//! Property tests of URL location, display redaction, byte ranges and upload part sizing,
//! through the engine's public API: whatever string or number comes in, nothing panics, every
//! failure is a typed error, and what can round-trip does.

use std::io::Write;

use objget_engine::redact::{register_secret, scrub, url_for_display};
use objget_engine::{
    ByteRange, CallOptions, CancellationToken, Engine, ErrorCode, Location, Scheme,
};
use percent_encoding::{utf8_percent_encode, AsciiSet};
use proptest::prelude::*;

/// Characters percent-encoded in one path segment (everything that is not unreserved): what
/// the engine encodes in a key, and the `/` that separates segments.
const SEGMENT: &AsciiSet = &objget_engine::manage::URL_KEY.add(b'/');

/// Codes a URL that cannot be located may fail with.
fn parse_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidUrl | ErrorCode::UnsupportedScheme | ErrorCode::Io
    )
}

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("s3"),
        Just("s3a"),
        Just("gs"),
        Just("az"),
        Just("azure"),
        Just("abfs"),
        Just("abfss"),
        Just("http"),
        Just("https"),
        Just("file"),
        Just("ftp"),
        Just("S3"),
        Just("HTTPS"),
        Just(""),
    ]
    .prop_map(str::to_string)
}

/// A key segment: unicode, spaces and URL metacharacters, never empty, `.` or `..`.
fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _~!$&'()*+,;=:@%?#é漢\u{1F600}-]{1,12}"
        .prop_filter("not a dot segment", |s| s != "." && s != "..")
}

/// `out` contains none of `secrets`.
fn hides(out: &str, secrets: &[&str]) -> Result<(), TestCaseError> {
    for s in secrets {
        prop_assert!(!out.contains(s), "{s} in {out}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any string at all: a location or a typed error, never a panic.
    #[test]
    fn parse_any_string(input in any::<String>()) {
        if let Err(e) = Location::parse(&input) {
            prop_assert!(parse_code(e.code()), "{input:?} → {:?}", e.code());
        }
    }

    /// Strings shaped like URLs (scheme, authority, path, query, fragment, escapes, unicode).
    #[test]
    fn parse_url_shaped(
        scheme in scheme(),
        authority in "[a-z0-9.@:%\\[\\]_-]{0,24}",
        path in "[a-zA-Z0-9/%.?#é \\\\-]{0,40}",
        query in proptest::option::of("[a-z0-9=&%/?#]{0,20}"),
    ) {
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        let input = format!("{scheme}://{authority}/{path}{q}");
        match Location::parse(&input) {
            Ok(l) => {
                prop_assert_eq!(&l.url, &input);
                prop_assert_eq!(l.file.is_some(), l.scheme == Scheme::File);
                if l.scheme != Scheme::File {
                    prop_assert!(!l.path.as_ref().is_empty(), "{input:?} has no key");
                }
            }
            Err(e) => prop_assert!(parse_code(e.code()), "{input:?} → {:?}", e.code()),
        }
    }

    /// A key whose segments are percent-encoded comes back decoded, exactly, for every cloud
    /// scheme and for HTTP (with and without a query).
    #[test]
    fn keys_round_trip(
        segments in proptest::collection::vec(segment(), 1..5),
        which in 0usize..5,
    ) {
        let encoded: Vec<String> =
            segments.iter().map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect();
        let key = segments.join("/");
        let (input, scheme, store_url) = match which {
            0 => (format!("s3://bucket/{}", encoded.join("/")), Scheme::S3, "s3://bucket".to_string()),
            1 => (format!("gs://bucket/{}", encoded.join("/")), Scheme::Gcs, "gs://bucket".to_string()),
            2 => (format!("az://container/{}", encoded.join("/")), Scheme::Azure, "az://container".to_string()),
            3 => (
                format!("https://example.com:8443/{}", encoded.join("/")),
                Scheme::Http,
                "https://example.com:8443".to_string(),
            ),
            _ => {
                let u = format!("https://example.com/{}?X-Sig=abc", encoded.join("/"));
                (u.clone(), Scheme::HttpQuery, u)
            }
        };
        let l = Location::parse(&input);
        prop_assert!(l.is_ok(), "{input:?} → {:?}", l.err().map(|e| e.code()));
        let l = l.unwrap();
        prop_assert_eq!(l.scheme, scheme);
        prop_assert_eq!(l.store_url, store_url);
        prop_assert_eq!(l.path.as_ref(), key.as_str());
    }

    /// Neither the shown form of a URL (no user-info, no query string) nor scrubbed text (no
    /// registered secret, no query of an http(s) URL) lets a secret through.
    #[test]
    fn display_and_scrub_let_no_secret_through(
        scheme in scheme(),
        user in "[a-z]{1,8}",
        password in "[A-Z]{12,20}",
        host in "[a-z0-9.-]{1,16}",
        path in "[a-z0-9/%.@é-]{0,24}",
        sig in "[A-Z]{12,20}",
        secret in "[A-Za-z0-9/+]{16,40}",
        before in "[^h]{0,30}",
        after in "[ -~]{0,30}",
        hex in "[a-f0-9]{24,32}",
    ) {
        let input = format!("{scheme}://{user}:{password}@{host}/{path}?sig={sig}");
        hides(&url_for_display(&input), &[&password, &sig])?;
        register_secret(&secret);
        let text = format!("{before}{secret}{after} https://h:1/b/k?X-Amz-Signature={hex}&x=1 done");
        hides(&scrub(&text), &[&secret, &hex])?;
    }

    /// Scrubbing scrubbed text changes nothing: error text is scrubbed at several layers (engine,
    /// addon, TypeScript), and each pass must not add another `<redacted>`.
    #[test]
    fn scrub_is_idempotent(
        text in "[ -~]{0,60}",
        url in "https?://[a-z0-9.:]{1,12}/[a-z0-9/]{0,12}(\\?[a-z0-9=&]{0,16})?",
    ) {
        let once = scrub(&format!("{text} {url} {text}"));
        prop_assert_eq!(scrub(&once), once.clone());
    }

    /// Any string at all can be shown without a panic.
    #[test]
    fn display_any_string(input in any::<String>()) {
        let _ = url_for_display(&input);
    }

    /// An upload's part size is at least the requested one and 5 MiB, and fits 10,000 parts.
    #[test]
    fn upload_part_size_fits(size in any::<u64>(), requested in proptest::option::of(any::<u64>())) {
        let part = objget_engine::write::upload_part_size(size, requested);
        prop_assert!(part >= 5 * 1024 * 1024);
        prop_assert!(part >= requested.unwrap_or(0));
        prop_assert!(size.div_ceil(part) <= 10_000);
    }
}

proptest! {
    // Each case parses up to 200,000 characters: a few suffice.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Very long inputs.
    #[test]
    fn parse_long(n in 1usize..200_000, c in any::<char>()) {
        let input = format!("s3://bucket/{}", c.to_string().repeat(n / c.len_utf8().max(1)));
        if let Err(e) = Location::parse(&input) {
            prop_assert!(parse_code(e.code()));
        }
    }
}

/// What `range` selects of an object of `size` bytes, as HTTP does; `None` when it selects no
/// byte.
fn selected(range: ByteRange, size: u64) -> Option<(u64, u64)> {
    let (start, end) = match range {
        ByteRange::Bounded { offset, length } => (offset, offset.saturating_add(length).min(size)),
        ByteRange::From(offset) => (offset, size),
        ByteRange::Suffix(n) => (size.saturating_sub(n), size),
    };
    (start < end).then_some((start, end))
}

fn range() -> impl Strategy<Value = ByteRange> {
    let n = prop_oneof![0u64..1200, Just(u64::MAX), Just(u64::MAX / 2), any::<u64>()];
    prop_oneof![
        (n.clone(), n.clone()).prop_map(|(offset, length)| ByteRange::Bounded { offset, length }),
        n.clone().prop_map(ByteRange::From),
        n.prop_map(ByteRange::Suffix),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A byte range of a local object reads exactly the bytes it selects; one that selects no
    /// byte reads nothing or is InvalidArgument; nothing panics, whatever the numbers.
    #[test]
    fn ranges_read_what_they_select(range in range(), size in prop_oneof![Just(0usize), 1usize..1000]) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&data).unwrap();
        let url = file.path().to_str().unwrap().to_string();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            Engine::new()
                .get(&url, Some(range), &CallOptions::default(), &CancellationToken::new())
                .await
        });
        match (selected(range, size as u64), got) {
            (Some((start, end)), Ok(bytes)) => {
                prop_assert_eq!(&bytes[..], &data[start as usize..end as usize], "{:?}", range);
            }
            (Some(_), Err(e)) => prop_assert!(false, "{range:?} of {size} bytes → {:?}: {}", e.code(), e.message()),
            (None, Ok(bytes)) => prop_assert!(bytes.is_empty(), "{range:?} of {size} → {} bytes", bytes.len()),
            (None, Err(e)) => prop_assert_eq!(e.code(), ErrorCode::InvalidArgument, "{:?}: {}", range, e.message()),
        }
    }
}
