//! A small Amazon `SimpleDB` client: the calls Deltaic's catalogue needs,
//! signed with Signature Version 2 (the only one `SimpleDB` accepts; no
//! maintained Rust client exists), over `ureq`.
//!
//! Owns: the [`SimpleDb`] trait the aws archiver talks to (so the budget
//! and catalogue logic can be tested against an in-memory double), the
//! HTTP client [`SdbClient`], the `SigV2` signer ([`sign_v2`]), the parsing of
//! `SimpleDB`'s XML responses, select paging ([`select_all`]) and the
//! quoting of select expressions ([`quote_value`], [`quote_name`]).
//!
//! Does not own: what the items mean (`mod.rs`, `budget.rs`).
//!
//! Invariants: a request is retried only for a transport failure or a 5xx
//! answer (`ServiceUnavailable` when throttled), at most [`ATTEMPTS`] times;
//! a retried conditional put may therefore report `ConditionalCheckFailed`
//! for a write that did land, which callers settle by reading the item
//! back. Names and values are UTF-8 text; `SimpleDB`'s base64-encoded
//! values (`encoding="base64"`) are decoded.

use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt::Write as _;
use std::time::Duration;

/// The API version `SimpleDB` speaks.
const VERSION: &str = "2009-04-15";

/// Attempts of one request before its failure is returned.
pub const ATTEMPTS: u32 = 5;

/// The most items one `BatchDeleteAttributes` may name.
pub const BATCH_LIMIT: usize = 25;

/// What failed in a `SimpleDB` call.
#[derive(Debug, thiserror::Error)]
pub enum SdbError {
    /// `SimpleDB` answered with an error document.
    #[error("{action}: {code} (HTTP {status}): {message}")]
    Service {
        action: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// No answer (connection refused, reset, timed out, TLS).
    #[error("{action}: {source}")]
    Transport {
        action: &'static str,
        #[source]
        source: ureq::Error,
    },
    /// An answer strata cannot read.
    #[error("{action}: unreadable answer (HTTP {status}): {detail}")]
    BadResponse {
        action: &'static str,
        status: u16,
        detail: String,
    },
}

impl SdbError {
    /// `SimpleDB`'s error code, if it sent one.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            SdbError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A conditional put or delete found the item not as expected.
    #[must_use]
    pub fn is_conditional_failure(&self) -> bool {
        matches!(
            self.code(),
            Some("ConditionalCheckFailed" | "AttributeDoesNotExist")
        )
    }

    /// The domain does not exist (nothing was ever stored).
    #[must_use]
    pub fn is_no_such_domain(&self) -> bool {
        self.code() == Some("NoSuchDomain")
    }

    fn retryable(&self) -> bool {
        match self {
            SdbError::Service { status, code, .. } => {
                *status >= 500 || code == "ServiceUnavailable" || code == "RequestTimeout"
            }
            SdbError::Transport { .. } => true,
            SdbError::BadResponse { status, .. } => *status >= 500,
        }
    }
}

/// One item: its name and its attributes in the order `SimpleDB` sent them
/// (a name may repeat: `SimpleDB` attributes are multi-valued).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub attrs: Vec<(String, String)>,
}

impl Item {
    /// The value of attribute `name` when it has exactly one; `Err` when it
    /// has several (neither Deltaic nor strata writes such an attribute).
    pub fn single(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self.attrs.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(format!("attribute `{name}` has several values"));
        }
        Ok(first)
    }

    /// The value of attribute `name` (the first, if several).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the item has any attribute (`GetAttributes` of a missing item
    /// answers with none).
    #[must_use]
    pub fn exists(&self) -> bool {
        !self.attrs.is_empty()
    }
}

/// The condition of a conditional put (`Expected.1.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The attribute must not exist.
    Absent(String),
    /// The attribute must have this value.
    Equals(String, String),
}

/// One page of a select.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectPage {
    pub items: Vec<Item>,
    pub next_token: Option<String>,
}

/// The `SimpleDB` calls Deltaic's catalogue uses. Every write replaces the
/// named attributes' values (Deltaic's boto calls all pass `replace=True`).
pub trait SimpleDb: Send + Sync {
    /// Create `domain` (succeeds when it exists).
    fn create_domain(&self, domain: &str) -> Result<(), SdbError>;
    /// The attributes of `item` (none when it does not exist).
    fn get_attributes(&self, domain: &str, item: &str, consistent: bool) -> Result<Item, SdbError>;
    /// Set `attrs` on `item`, replacing their values, if `expected` holds.
    fn put_attributes(
        &self,
        domain: &str,
        item: &str,
        attrs: &[(String, String)],
        expected: Option<&Expected>,
    ) -> Result<(), SdbError>;
    /// Remove the attributes `names` of `item` (all values).
    fn delete_attributes(&self, domain: &str, item: &str, names: &[String])
    -> Result<(), SdbError>;
    /// Remove whole items, at most [`BATCH_LIMIT`] per call.
    fn batch_delete(&self, domain: &str, items: &[String]) -> Result<(), SdbError>;
    /// One page of `expression`'s results, from `next_token`.
    fn select(
        &self,
        expression: &str,
        consistent: bool,
        next_token: Option<&str>,
    ) -> Result<SelectPage, SdbError>;
}

/// Every item `expression` selects, following `NextToken` through the pages.
pub fn select_all(
    db: &dyn SimpleDb,
    expression: &str,
    consistent: bool,
) -> Result<Vec<Item>, SdbError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = db.select(expression, consistent, token.as_deref())?;
        out.extend(page.items);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// A value inside a double-quoted select literal: `"` doubled.
#[must_use]
pub fn quote_value(value: &str) -> String {
    value.replace('"', "\"\"")
}

/// A name inside backquotes: `` ` `` doubled.
#[must_use]
pub fn quote_name(name: &str) -> String {
    name.replace('`', "``")
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as
/// Signature Version 2 wants it (uppercase hex; a space is `%20`).
#[must_use]
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The canonical query of Signature Version 2: `params` sorted by name,
/// each `name=value` percent-encoded, joined by `&`.
#[must_use]
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The Signature Version 2 signature (base64 HMAC-SHA256) of a request with
/// `params` (which already hold `AWSAccessKeyId`, `SignatureVersion`,
/// `SignatureMethod` and `Timestamp`, and not `Signature`), sent with
/// `method` to `host` (as in the Host header, port included) and `path`.
#[must_use]
pub fn sign_v2(
    method: &str,
    host: &str,
    path: &str,
    params: &[(String, String)],
    secret: &str,
) -> String {
    let to_sign = format!(
        "{method}\n{}\n{path}\n{}",
        host.to_ascii_lowercase(),
        canonical_query(params)
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `SimpleDB` endpoint of `region`.
#[must_use]
pub fn default_endpoint(region: &str) -> String {
    if region == "us-east-1" {
        "https://sdb.amazonaws.com".to_owned()
    } else {
        format!("https://sdb.{region}.amazonaws.com")
    }
}

/// `SimpleDB` over HTTPS (or HTTP, for a local server), `SigV2`-signed.
pub struct SdbClient {
    agent: ureq::Agent,
    url: String,
    host: String,
    path: String,
    access_key: String,
    secret: String,
}

impl SdbClient {
    /// A client of `endpoint` (`https://sdb.amazonaws.com`, `http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str, access_key: &str, secret: &str) -> Result<SdbClient, String> {
        let uri: ureq::http::Uri = endpoint
            .parse()
            .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
        let host = uri
            .authority()
            .ok_or_else(|| format!("{endpoint:?} names no host"))?
            .as_str()
            .to_owned();
        let path = match uri.path() {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_mins(2)))
            .build()
            .new_agent();
        Ok(SdbClient {
            agent,
            url: endpoint.to_owned(),
            host,
            path,
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Send `action` with `params` (retried as the module says) and return
    /// the response document.
    fn call(&self, action: &'static str, params: &[(String, String)]) -> Result<String, SdbError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call_once(action, params.to_vec()) {
                Err(e) if attempt < ATTEMPTS && e.retryable() => {
                    // why: SimpleDB throttles with 503 and asks for exponential backoff
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
                r => return r,
            }
        }
    }

    fn call_once(
        &self,
        action: &'static str,
        mut params: Vec<(String, String)>,
    ) -> Result<String, SdbError> {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        for (k, v) in [
            ("Action", action),
            ("Version", VERSION),
            ("AWSAccessKeyId", self.access_key.as_str()),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", stamp.as_str()),
        ] {
            params.push((k.to_owned(), v.to_owned()));
        }
        let signature = sign_v2("POST", &self.host, &self.path, &params, &self.secret);
        let body = format!(
            "{}&Signature={}",
            canonical_query(&params),
            percent_encode(&signature)
        );
        let mut resp = self
            .agent
            .post(&self.url)
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .send(body.as_bytes())
            .map_err(|source| SdbError::Transport { action, source })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|source| SdbError::Transport { action, source })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(match parse_error(&text) {
            Some((code, message)) => SdbError::Service {
                action,
                status,
                code,
                message,
            },
            None => SdbError::BadResponse {
                action,
                status,
                detail: text.chars().take(200).collect(),
            },
        })
    }
}

fn bad(action: &'static str, detail: impl Into<String>) -> SdbError {
    SdbError::BadResponse {
        action,
        status: 200,
        detail: detail.into(),
    }
}

impl SimpleDb for SdbClient {
    fn create_domain(&self, domain: &str) -> Result<(), SdbError> {
        self.call("CreateDomain", &[("DomainName".into(), domain.to_owned())])?;
        Ok(())
    }

    fn get_attributes(&self, domain: &str, item: &str, consistent: bool) -> Result<Item, SdbError> {
        let mut params = vec![
            ("DomainName".into(), domain.to_owned()),
            ("ItemName".into(), item.to_owned()),
        ];
        if consistent {
            params.push(("ConsistentRead".into(), "true".into()));
        }
        let text = self.call("GetAttributes", &params)?;
        let attrs = parse_get_attributes(&text).map_err(|e| bad("GetAttributes", e))?;
        Ok(Item {
            name: item.to_owned(),
            attrs,
        })
    }

    fn put_attributes(
        &self,
        domain: &str,
        item: &str,
        attrs: &[(String, String)],
        expected: Option<&Expected>,
    ) -> Result<(), SdbError> {
        let mut params = vec![
            ("DomainName".into(), domain.to_owned()),
            ("ItemName".into(), item.to_owned()),
        ];
        for (i, (k, v)) in attrs.iter().enumerate() {
            let n = i + 1;
            params.push((format!("Attribute.{n}.Name"), k.clone()));
            params.push((format!("Attribute.{n}.Value"), v.clone()));
            params.push((format!("Attribute.{n}.Replace"), "true".into()));
        }
        match expected {
            Some(Expected::Absent(name)) => {
                params.push(("Expected.1.Name".into(), name.clone()));
                params.push(("Expected.1.Exists".into(), "false".into()));
            }
            Some(Expected::Equals(name, value)) => {
                params.push(("Expected.1.Name".into(), name.clone()));
                params.push(("Expected.1.Value".into(), value.clone()));
            }
            None => {}
        }
        self.call("PutAttributes", &params)?;
        Ok(())
    }

    fn delete_attributes(
        &self,
        domain: &str,
        item: &str,
        names: &[String],
    ) -> Result<(), SdbError> {
        let mut params = vec![
            ("DomainName".into(), domain.to_owned()),
            ("ItemName".into(), item.to_owned()),
        ];
        for (i, name) in names.iter().enumerate() {
            params.push((format!("Attribute.{}.Name", i + 1), name.clone()));
        }
        self.call("DeleteAttributes", &params)?;
        Ok(())
    }

    fn batch_delete(&self, domain: &str, items: &[String]) -> Result<(), SdbError> {
        assert!(items.len() <= BATCH_LIMIT, "at most {BATCH_LIMIT} items");
        if items.is_empty() {
            return Ok(());
        }
        let mut params = vec![("DomainName".into(), domain.to_owned())];
        for (i, item) in items.iter().enumerate() {
            params.push((format!("Item.{}.ItemName", i + 1), item.clone()));
        }
        self.call("BatchDeleteAttributes", &params)?;
        Ok(())
    }

    fn select(
        &self,
        expression: &str,
        consistent: bool,
        next_token: Option<&str>,
    ) -> Result<SelectPage, SdbError> {
        let mut params = vec![("SelectExpression".into(), expression.to_owned())];
        if consistent {
            params.push(("ConsistentRead".into(), "true".into()));
        }
        if let Some(t) = next_token {
            params.push(("NextToken".into(), t.to_owned()));
        }
        let text = self.call("Select", &params)?;
        parse_select(&text).map_err(|e| bad("Select", e))
    }
}

/// The text of an element, base64-decoded when `SimpleDB` marked it so
/// (names and values that are not valid XML text).
fn text_of(tag: &mut ScopedDecoder) -> Result<String, String> {
    let base64 = tag.start_el().attr("encoding") == Some("base64");
    let text = try_data(tag).map_err(|e| e.to_string())?.into_owned();
    if base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("bad base64 {text:?}: {e}"))?;
        String::from_utf8(bytes).map_err(|_| "a base64 value is not UTF-8".to_owned())
    } else {
        Ok(text)
    }
}

/// An `<Attribute><Name/><Value/></Attribute>` element.
fn attribute(tag: &mut ScopedDecoder) -> Result<(String, String), String> {
    let (mut name, mut value) = (None, None);
    while let Some(mut t) = tag.next_tag() {
        if t.start_el().matches("Name") {
            name = Some(text_of(&mut t)?);
        } else if t.start_el().matches("Value") {
            value = Some(text_of(&mut t)?);
        }
    }
    Ok((
        name.ok_or("an Attribute without a Name")?,
        value.unwrap_or_default(),
    ))
}

/// The attributes of a `GetAttributesResponse`.
pub fn parse_get_attributes(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut doc = Document::new(text);
    let mut root = doc.root_element().map_err(|e| e.to_string())?;
    if !root.start_el().matches("GetAttributesResponse") {
        return Err("not a GetAttributesResponse".into());
    }
    let mut out = Vec::new();
    while let Some(mut result) = root.next_tag() {
        if result.start_el().matches("GetAttributesResult") {
            while let Some(mut a) = result.next_tag() {
                if a.start_el().matches("Attribute") {
                    out.push(attribute(&mut a)?);
                }
            }
        }
    }
    Ok(out)
}

/// The items and next token of a `SelectResponse`.
pub fn parse_select(text: &str) -> Result<SelectPage, String> {
    let mut doc = Document::new(text);
    let mut root = doc.root_element().map_err(|e| e.to_string())?;
    if !root.start_el().matches("SelectResponse") {
        return Err("not a SelectResponse".into());
    }
    let mut page = SelectPage::default();
    while let Some(mut result) = root.next_tag() {
        if !result.start_el().matches("SelectResult") {
            continue;
        }
        while let Some(mut t) = result.next_tag() {
            if t.start_el().matches("Item") {
                let mut item = Item::default();
                let mut named = false;
                while let Some(mut f) = t.next_tag() {
                    if f.start_el().matches("Name") {
                        item.name = text_of(&mut f)?;
                        named = true;
                    } else if f.start_el().matches("Attribute") {
                        item.attrs.push(attribute(&mut f)?);
                    }
                }
                if !named {
                    return Err("an Item without a Name".into());
                }
                page.items.push(item);
            } else if t.start_el().matches("NextToken") {
                let token = text_of(&mut t)?;
                if !token.is_empty() {
                    page.next_token = Some(token);
                }
            }
        }
    }
    Ok(page)
}

/// The code and message of an error document: `SimpleDB`'s
/// (`<Response><Errors><Error><Code/><Message/>...`) or the generic AWS query
/// form (`<ErrorResponse><Error>...`), which botocore also reads.
#[must_use]
pub fn parse_error(text: &str) -> Option<(String, String)> {
    fn error(el: &mut ScopedDecoder) -> Option<(String, String)> {
        let (mut code, mut message) = (None, String::new());
        while let Some(mut f) = el.next_tag() {
            if f.start_el().matches("Code") {
                code = text_of(&mut f).ok();
            } else if f.start_el().matches("Message") {
                message = text_of(&mut f).unwrap_or_default();
            }
        }
        code.map(|c| (c, message))
    }
    let mut doc = Document::new(text);
    let mut root = doc.root_element().ok()?;
    while let Some(mut child) = root.next_tag() {
        if child.start_el().matches("Error") {
            return error(&mut child);
        }
        if !child.start_el().matches("Errors") {
            continue;
        }
        while let Some(mut e) = child.next_tag() {
            if e.start_el().matches("Error") {
                return error(&mut e);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The vector was computed by botocore 1.44.8's `SigV2Auth` (the test
    /// venv's), for this request at a fixed clock:
    /// `AWSRequest(method='POST', url='https://sdb.amazonaws.com/', data=params)`,
    /// `SigV2Auth(Credentials('AKIDEXAMPLE', 'wJalr...EXAMPLEKEY')).add_auth(req)`.
    #[test]
    fn the_signature_matches_botocore() {
        let params = p(&[
            ("Action", "PutAttributes"),
            ("DomainName", "deltaic-backups"),
            ("ItemName", "20240101-1/rsync/host a"),
            ("Attribute.1.Name", "aws-set"),
            ("Attribute.1.Value", "20240101-1"),
            ("Attribute.1.Replace", "true"),
            ("Expected.1.Name", "aws-aid"),
            ("Expected.1.Exists", "false"),
            ("Version", "2009-04-15"),
            ("AWSAccessKeyId", "AKIDEXAMPLE"),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", "2026-11-30T12:34:56Z"),
        ]);
        assert_eq!(
            sign_v2(
                "POST",
                "sdb.amazonaws.com",
                "/",
                &params,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
            ),
            "jiTiE+08jkb8AZD5sWITn5HcCb+AwFuyl6b1G6e2K3U="
        );
        // One byte more anywhere is another signature.
        let mut other = params.clone();
        other[2].1.push('x');
        assert_ne!(
            sign_v2(
                "POST",
                "sdb.amazonaws.com",
                "/",
                &other,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
            ),
            "jiTiE+08jkb8AZD5sWITn5HcCb+AwFuyl6b1G6e2K3U="
        );
    }

    #[test]
    fn the_canonical_query_sorts_by_byte_and_encodes_all_but_unreserved() {
        assert_eq!(
            canonical_query(&p(&[("b", "x y"), ("B", "é/~"), ("a.1", "*+=")])),
            "B=%C3%A9%2F~&a.1=%2A%2B%3D&b=x%20y"
        );
    }

    #[test]
    fn select_literals_double_their_quotes() {
        assert_eq!(quote_value(r#"a"b"#), r#"a""b"#);
        assert_eq!(quote_name("a`b"), "a``b");
    }

    #[test]
    fn responses_parse_with_base64_values_and_next_tokens() {
        let sel = r#"<?xml version="1.0"?>
<SelectResponse xmlns="http://sdb.amazonaws.com/doc/2009-04-15/"><SelectResult>
<Item><Name>20240101-1/rsync/a</Name><Attribute><Name>size</Name><Value>12</Value></Attribute>
<Attribute><Name>aws-set</Name><Value encoding="base64">MjAyNDAxMDEtMQ==</Value></Attribute></Item>
<Item><Name>20240101-1//</Name></Item>
<NextToken>tok&amp;1</NextToken></SelectResult>
<ResponseMetadata><RequestId>x</RequestId><BoxUsage>0.1</BoxUsage></ResponseMetadata></SelectResponse>"#;
        let page = parse_select(sel).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].name, "20240101-1/rsync/a");
        assert_eq!(page.items[0].get("aws-set"), Some("20240101-1"));
        assert_eq!(page.items[0].single("size"), Ok(Some("12")));
        assert!(!page.items[1].exists());
        assert_eq!(page.next_token.as_deref(), Some("tok&1"));
        let get = r"<GetAttributesResponse><GetAttributesResult>
<Attribute><Name>serial</Name><Value>3</Value></Attribute>
<Attribute><Name>serial</Name><Value>4</Value></Attribute>
</GetAttributesResult></GetAttributesResponse>";
        let item = Item {
            name: "/bandwidth".into(),
            attrs: parse_get_attributes(get).unwrap(),
        };
        assert!(item.single("serial").is_err());
        let err = r"<Response><Errors><Error><Code>ConditionalCheckFailed</Code><Message>Conditional check failed. Attribute (aws-aid) value exists</Message><BoxUsage>0.0000219907</BoxUsage></Error></Errors><RequestID>1</RequestID></Response>";
        assert_eq!(
            parse_error(err),
            Some((
                "ConditionalCheckFailed".into(),
                "Conditional check failed. Attribute (aws-aid) value exists".into()
            ))
        );
        let generic = r#"<ErrorResponse xmlns="http://sdb.amazonaws.com/doc/2009-04-15/"><Error><Type>Sender</Type><Code>NoSuchDomain</Code><Message>The specified domain does not exist.</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        assert_eq!(
            parse_error(generic).map(|(c, _)| c).as_deref(),
            Some("NoSuchDomain")
        );
        assert!(parse_error("<html>busy</html>").is_none());
    }
}
