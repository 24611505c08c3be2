//! Reading the ACL and CORS sidecars (`_a`, `bucket_A`, `bucket_C`) in
//! either of their two forms: strata's JSON ([`AclDoc`], [`CorsRuleDoc`])
//! or the S3 XML that Deltaic stored as radosgw returned it
//! (`<AccessControlPolicy>`, `<CORSConfiguration>`).
//!
//! A sidecar in either form means the same thing, so a Deltaic-written
//! unit restores as it is, and a backup over it compares what it fetches
//! with what the sidecar *says*, not with its bytes: a sidecar whose
//! meaning did not change is left alone, in whichever form it is
//! (DESIGN §2: no block rewritten without need). A sidecar that changed is
//! written in strata's JSON.

use super::s3::{AclDoc, CorsRuleDoc, GrantDoc, GranteeDoc, Principal};
use aws_smithy_xml::decode::{Document, ScopedDecoder, try_data};

/// Why a sidecar could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a valid S3 XML document: {0}")]
    Xml(String),
}

/// Whether `bytes` hold XML (Deltaic's form) rather than JSON.
fn is_xml(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

fn utf8(bytes: &[u8]) -> Result<&str, SidecarError> {
    std::str::from_utf8(bytes).map_err(|e| SidecarError::Xml(e.to_string()))
}

fn xml_err(e: impl std::fmt::Display) -> SidecarError {
    SidecarError::Xml(e.to_string())
}

/// `bytes` as text, whole: the smithy decoder reads a cut-off document
/// without complaint, so the closing root tag is checked here.
fn whole<'a>(bytes: &'a [u8], root: &str) -> Result<&'a str, SidecarError> {
    let s = utf8(bytes)?;
    if s.trim_end().ends_with(&format!("</{root}>")) {
        Ok(s)
    } else {
        Err(SidecarError::Xml(format!(
            "cut off: it does not end with </{root}>"
        )))
    }
}

fn text(el: &mut ScopedDecoder) -> Result<String, SidecarError> {
    Ok(try_data(el).map_err(xml_err)?.into_owned())
}

/// An object or bucket ACL, from either form.
pub fn read_acl(bytes: &[u8]) -> Result<AclDoc, SidecarError> {
    if !is_xml(bytes) {
        return Ok(serde_json::from_slice(bytes)?);
    }
    let mut doc = Document::new(whole(bytes, "AccessControlPolicy")?);
    let mut root = doc.root_element().map_err(xml_err)?;
    if !root.start_el().matches("AccessControlPolicy") {
        return Err(SidecarError::Xml(
            "the root is not AccessControlPolicy".into(),
        ));
    }
    let mut acl = AclDoc {
        owner: None,
        grants: Vec::new(),
    };
    while let Some(mut el) = root.next_tag() {
        if el.start_el().matches("Owner") {
            let (mut id, mut display_name) = (None, None);
            while let Some(mut f) = el.next_tag() {
                if f.start_el().matches("ID") {
                    id = Some(text(&mut f)?);
                } else if f.start_el().matches("DisplayName") {
                    display_name = Some(text(&mut f)?);
                }
            }
            acl.owner = id.map(|id| Principal { id, display_name });
        } else if el.start_el().matches("AccessControlList") {
            while let Some(mut g) = el.next_tag() {
                if g.start_el().matches("Grant")
                    && let Some(grant) = grant(&mut g)?
                {
                    acl.grants.push(grant);
                }
            }
        }
    }
    Ok(acl)
}

/// One `<Grant>`; `None` for a grantee of a kind S3 does not define (the
/// SDK's reading leaves those out too).
fn grant(g: &mut ScopedDecoder) -> Result<Option<GrantDoc>, SidecarError> {
    let mut grantee = None;
    let mut permission = None;
    while let Some(mut f) = g.next_tag() {
        if f.start_el().matches("Grantee") {
            // why: `xsi:type` names the kind; a grantee without it is known by its fields
            let kind = f
                .start_el()
                .attr("xsi:type")
                .map(str::to_owned)
                .unwrap_or_default();
            let (mut id, mut name, mut uri, mut email) = (None, None, None, None);
            while let Some(mut h) = f.next_tag() {
                let el = h.start_el();
                let slot = if el.matches("ID") {
                    &mut id
                } else if el.matches("DisplayName") {
                    &mut name
                } else if el.matches("URI") {
                    &mut uri
                } else if el.matches("EmailAddress") {
                    &mut email
                } else {
                    continue;
                };
                *slot = Some(text(&mut h)?);
            }
            grantee = match (kind.as_str(), id, uri, email) {
                ("CanonicalUser" | "", Some(id), None, None) => Some(GranteeDoc::CanonicalUser {
                    id,
                    display_name: name,
                }),
                ("Group" | "", None, Some(uri), None) => Some(GranteeDoc::Group { uri }),
                ("AmazonCustomerByEmail" | "", None, None, Some(email)) => {
                    Some(GranteeDoc::AmazonCustomerByEmail { email })
                }
                _ => None,
            };
        } else if f.start_el().matches("Permission") {
            permission = Some(text(&mut f)?);
        }
    }
    Ok(grantee
        .zip(permission)
        .map(|(grantee, permission)| GrantDoc {
            grantee,
            permission,
        }))
}

/// A bucket's CORS rules, from either form.
pub fn read_cors(bytes: &[u8]) -> Result<Vec<CorsRuleDoc>, SidecarError> {
    if !is_xml(bytes) {
        return Ok(serde_json::from_slice(bytes)?);
    }
    let mut doc = Document::new(whole(bytes, "CORSConfiguration")?);
    let mut root = doc.root_element().map_err(xml_err)?;
    if !root.start_el().matches("CORSConfiguration") {
        return Err(SidecarError::Xml(
            "the root is not CORSConfiguration".into(),
        ));
    }
    let mut rules = Vec::new();
    while let Some(mut r) = root.next_tag() {
        if !r.start_el().matches("CORSRule") {
            continue;
        }
        let mut rule = CorsRuleDoc {
            id: None,
            allowed_headers: Vec::new(),
            allowed_methods: Vec::new(),
            allowed_origins: Vec::new(),
            expose_headers: Vec::new(),
            max_age_seconds: None,
        };
        while let Some(mut f) = r.next_tag() {
            let el = f.start_el();
            if el.matches("ID") {
                rule.id = Some(text(&mut f)?);
            } else if el.matches("AllowedHeader") {
                rule.allowed_headers.push(text(&mut f)?);
            } else if el.matches("AllowedMethod") {
                rule.allowed_methods.push(text(&mut f)?);
            } else if el.matches("AllowedOrigin") {
                rule.allowed_origins.push(text(&mut f)?);
            } else if el.matches("ExposeHeader") {
                rule.expose_headers.push(text(&mut f)?);
            } else if el.matches("MaxAgeSeconds") {
                let t = text(&mut f)?;
                rule.max_age_seconds = Some(
                    t.trim()
                        .parse()
                        .map_err(|e| SidecarError::Xml(format!("MaxAgeSeconds {t:?}: {e}")))?,
                );
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape radosgw returns for GET ?acl (one line, as Deltaic stored it).
    const OBJECT_ACL: &str = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?><AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
        "<Owner><ID>alice</ID><DisplayName>Alice A.</DisplayName></Owner><AccessControlList>",
        r#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>bob</ID><DisplayName>bob</DisplayName></Grantee><Permission>READ</Permission></Grant>"#,
        r#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>"#,
        r#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="AmazonCustomerByEmail"><EmailAddress>c@example.org</EmailAddress></Grantee><Permission>WRITE_ACP</Permission></Grant>"#,
        r#"<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>alice</ID><DisplayName>Alice A.</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"#,
        "</AccessControlList></AccessControlPolicy>"
    );

    fn user(id: &str, name: &str, permission: &str) -> GrantDoc {
        GrantDoc {
            grantee: GranteeDoc::CanonicalUser {
                id: id.into(),
                display_name: Some(name.into()),
            },
            permission: permission.into(),
        }
    }

    #[test]
    fn deltaic_xml_acl_reads_as_the_json_form_says() {
        let xml = read_acl(OBJECT_ACL.as_bytes()).unwrap();
        let want = AclDoc {
            owner: Some(Principal {
                id: "alice".into(),
                display_name: Some("Alice A.".into()),
            }),
            grants: vec![
                user("bob", "bob", "READ"),
                GrantDoc {
                    grantee: GranteeDoc::Group {
                        uri: "http://acs.amazonaws.com/groups/global/AllUsers".into(),
                    },
                    permission: "READ".into(),
                },
                GrantDoc {
                    grantee: GranteeDoc::AmazonCustomerByEmail {
                        email: "c@example.org".into(),
                    },
                    permission: "WRITE_ACP".into(),
                },
                user("alice", "Alice A.", "FULL_CONTROL"),
            ],
        };
        assert_eq!(xml, want);
        // strata's own form of the same ACL reads the same
        let json = super::super::s3::to_json(&want);
        assert_eq!(read_acl(&json).unwrap(), want);
    }

    #[test]
    fn xml_acl_edge_cases() {
        // pretty-printed, escaped text, no xsi:type, an empty display name
        let xml = "\n<AccessControlPolicy>\n  <Owner><ID>a&amp;b</ID></Owner>\n  <AccessControlList>\n    <Grant><Grantee><ID>a&amp;b</ID><DisplayName></DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>\n  </AccessControlList>\n</AccessControlPolicy>\n";
        let acl = read_acl(xml.as_bytes()).unwrap();
        assert_eq!(acl.owner.unwrap().id, "a&b");
        assert_eq!(acl.grants, vec![user("a&b", "", "FULL_CONTROL")]);
        for bad in [
            "<Error><Code>NoSuchKey</Code></Error>",
            "<AccessControlPolicy><Owner>",
            "",
        ] {
            assert!(read_acl(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(matches!(
            read_acl(b"{\"owner\": 1}"),
            Err(SidecarError::Json(_))
        ));
    }

    #[test]
    fn deltaic_xml_cors_reads_as_the_json_form_says() {
        let xml = concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?><CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
            "<CORSRule><ID>web</ID><AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>",
            "<AllowedOrigin>https://example.org</AllowedOrigin><AllowedHeader>*</AllowedHeader>",
            "<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>300</MaxAgeSeconds></CORSRule>",
            "<CORSRule><AllowedMethod>PUT</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule>",
            "</CORSConfiguration>"
        );
        let want = vec![
            CorsRuleDoc {
                id: Some("web".into()),
                allowed_headers: vec!["*".into()],
                allowed_methods: vec!["GET".into(), "HEAD".into()],
                allowed_origins: vec!["https://example.org".into()],
                expose_headers: vec!["ETag".into()],
                max_age_seconds: Some(300),
            },
            CorsRuleDoc {
                id: None,
                allowed_headers: vec![],
                allowed_methods: vec!["PUT".into()],
                allowed_origins: vec!["*".into()],
                expose_headers: vec![],
                max_age_seconds: None,
            },
        ];
        assert_eq!(read_cors(xml.as_bytes()).unwrap(), want);
        assert_eq!(read_cors(&super::super::s3::to_json(&want)).unwrap(), want);
        assert!(read_cors(b"<CORSConfiguration><CORSRule><MaxAgeSeconds>x</MaxAgeSeconds></CORSRule></CORSConfiguration>").is_err());
    }
}
