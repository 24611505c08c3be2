//! The S3 side: a client for radosgw, and the stored forms (JSON) of what
//! S3 returns about an object or a bucket: metadata, ACL, CORS.
//!
//! The metadata sidecar keeps Deltaic's JSON shape (`{"metadata": {...},
//! "Content-Type": ..., "ETag": ..., "Last-Modified": ...}`), so a Deltaic
//! root's sidecars stay valid. ACLs and CORS are stored as JSON documents
//! of the fields S3 defines; Deltaic's XML forms of them are read by
//! [`super::sidecar`] and left in place while they stay true.

use super::RgwError;
use super::admin::Keys;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::types::{
    AccessControlPolicy, CorsConfiguration, CorsRule, Grant, Grantee, Owner, Permission, Type,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A client for `server` (`host[:port]`) with `keys`, path-style.
#[must_use]
pub fn client(server: &str, secure: bool, keys: &Keys) -> aws_sdk_s3::Client {
    let scheme = if secure { "https" } else { "http" };
    let creds = Credentials::new(
        &keys.access_key,
        &keys.secret_key,
        None,
        None,
        "radosgw-admin",
    );
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        // why: radosgw ignores the region, but SigV4 needs one
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("{scheme}://{server}"))
        // why: bucket names as host names need wildcard DNS that a radosgw rarely has
        .force_path_style(true)
        .credentials_provider(creds)
        // why: radosgw (Pacific) rejects the SDK's default streaming CRC trailers
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // why: radosgw's default frontend makes every small response on a
        // reused connection wait 40 ms for an ACK; this client sends it at once
        .http_client(super::http::QuickAckClient::shared())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub use crate::s3::S3Failure;

/// The metadata sidecar (`_m`): Deltaic's JSON shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// User metadata (`x-amz-meta-*`), names without the prefix.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(
        rename = "Cache-Control",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_control: Option<String>,
    #[serde(
        rename = "Content-Disposition",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_disposition: Option<String>,
    #[serde(
        rename = "Content-Encoding",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_encoding: Option<String>,
    #[serde(
        rename = "Content-Language",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_language: Option<String>,
    #[serde(
        rename = "Content-Type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub content_type: Option<String>,
    /// The `Expires` header, as the server sent it (an HTTP date).
    #[serde(rename = "Expires", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Where a website bucket redirects this object.
    #[serde(
        rename = "x-amz-website-redirect-location",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub website_redirect_location: Option<String>,
    /// Informational: S3 computes it; a restore cannot set it.
    #[serde(rename = "ETag", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Informational (HTTP date): a restore cannot set it.
    #[serde(
        rename = "Last-Modified",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_modified: Option<String>,
}

impl ObjectMeta {
    /// Pretty, sorted JSON: stable bytes, so an unchanged sidecar is not rewritten.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// A user or the owner in an ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum GranteeDoc {
    CanonicalUser {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
    },
    Group {
        uri: String,
    },
    AmazonCustomerByEmail {
        email: String,
    },
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantDoc {
    pub grantee: GranteeDoc,
    pub permission: String,
}

/// The ACL sidecar (`_a`) and `bucket_A`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDoc {
    pub owner: Option<Principal>,
    pub grants: Vec<GrantDoc>,
}

impl AclDoc {
    #[must_use]
    pub fn from_sdk(owner: Option<&Owner>, grants: &[Grant]) -> AclDoc {
        AclDoc {
            owner: owner.and_then(|o| {
                Some(Principal {
                    id: o.id()?.to_owned(),
                    display_name: o.display_name().map(str::to_owned),
                })
            }),
            grants: grants
                .iter()
                .filter_map(|g| {
                    let ge = g.grantee()?;
                    let grantee = match ge.r#type() {
                        Type::CanonicalUser => GranteeDoc::CanonicalUser {
                            id: ge.id()?.to_owned(),
                            display_name: ge.display_name().map(str::to_owned),
                        },
                        Type::Group => GranteeDoc::Group {
                            uri: ge.uri()?.to_owned(),
                        },
                        Type::AmazonCustomerByEmail => GranteeDoc::AmazonCustomerByEmail {
                            email: ge.email_address()?.to_owned(),
                        },
                        _ => return None,
                    };
                    Some(GrantDoc {
                        grantee,
                        permission: g.permission()?.as_str().to_owned(),
                    })
                })
                .collect(),
        }
    }

    /// The S3 form, leaving out grants `keep` refuses (grantees that do not exist).
    pub fn to_sdk(
        &self,
        keep: impl Fn(&GranteeDoc) -> bool,
    ) -> Result<AccessControlPolicy, RgwError> {
        let mut grants = Vec::new();
        for g in self.grants.iter().filter(|g| keep(&g.grantee)) {
            let b = match &g.grantee {
                GranteeDoc::CanonicalUser { id, display_name } => Grantee::builder()
                    .r#type(Type::CanonicalUser)
                    .id(id)
                    .set_display_name(display_name.clone()),
                GranteeDoc::Group { uri } => Grantee::builder().r#type(Type::Group).uri(uri),
                GranteeDoc::AmazonCustomerByEmail { email } => Grantee::builder()
                    .r#type(Type::AmazonCustomerByEmail)
                    .email_address(email),
            };
            let grantee = b.build().map_err(|e| RgwError::Build(e.to_string()))?;
            grants.push(
                Grant::builder()
                    .grantee(grantee)
                    .permission(Permission::from(g.permission.as_str()))
                    .build(),
            );
        }
        let owner = self.owner.as_ref().map(|o| {
            Owner::builder()
                .id(&o.id)
                .set_display_name(o.display_name.clone())
                .build()
        });
        Ok(AccessControlPolicy::builder()
            .set_grants(Some(grants))
            .set_owner(owner)
            .build())
    }

    /// Grants as `(grantee, permission)` without display names, sorted: what
    /// "the same ACL" means when comparing across buckets.
    #[must_use]
    pub fn normalized(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .grants
            .iter()
            .map(|g| {
                let who = match &g.grantee {
                    GranteeDoc::CanonicalUser { id, .. } => format!("id={id}"),
                    GranteeDoc::Group { uri } => format!("uri={uri}"),
                    GranteeDoc::AmazonCustomerByEmail { email } => format!("email={email}"),
                };
                (who, g.permission.clone())
            })
            .collect();
        v.sort();
        v
    }
}

/// One CORS rule, as stored in `bucket_C`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRuleDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

impl CorsRuleDoc {
    #[must_use]
    pub fn from_sdk(r: &CorsRule) -> CorsRuleDoc {
        CorsRuleDoc {
            id: r.id().map(str::to_owned),
            allowed_headers: r.allowed_headers().to_vec(),
            allowed_methods: r.allowed_methods().to_vec(),
            allowed_origins: r.allowed_origins().to_vec(),
            expose_headers: r.expose_headers().to_vec(),
            max_age_seconds: r.max_age_seconds(),
        }
    }

    pub fn to_sdk(rules: &[CorsRuleDoc]) -> Result<CorsConfiguration, RgwError> {
        let mut out = Vec::new();
        for r in rules {
            out.push(
                CorsRule::builder()
                    .set_id(r.id.clone())
                    .set_allowed_headers(Some(r.allowed_headers.clone()))
                    .set_allowed_methods(Some(r.allowed_methods.clone()))
                    .set_allowed_origins(Some(r.allowed_origins.clone()))
                    .set_expose_headers(Some(r.expose_headers.clone()))
                    .set_max_age_seconds(r.max_age_seconds)
                    .build()
                    .map_err(|e| RgwError::Build(e.to_string()))?,
            );
        }
        CorsConfiguration::builder()
            .set_cors_rules(Some(out))
            .build()
            .map_err(|e| RgwError::Build(e.to_string()))
    }
}

/// Pretty JSON with a newline, for sidecars.
pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Decode a key from a listing made with `encoding-type=url`.
#[must_use]
pub fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            // why: S3's url encoding writes a space as '+' (a literal '+' comes as %2B)
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("a%2Fb+c%2B%0A").unwrap(), "a/b c+\n");
        assert_eq!(url_decode("%C3%A9").unwrap(), "é");
        assert!(url_decode("%zz").is_none());
        assert!(url_decode("%FF").is_none());
    }

    #[test]
    fn meta_keeps_deltaic_shape() {
        let m = ObjectMeta {
            metadata: [("color".to_owned(), "blue".to_owned())].into(),
            content_type: Some("text/plain".into()),
            etag: Some("\"abc\"".into()),
            ..ObjectMeta::default()
        };
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(text.contains("\"Content-Type\": \"text/plain\""), "{text}");
        assert!(text.contains("\"metadata\""), "{text}");
        let back: ObjectMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn acl_docs_round_trip_through_the_sdk_form() {
        let doc = AclDoc {
            owner: Some(Principal {
                id: "alice".into(),
                display_name: Some("Alice".into()),
            }),
            grants: vec![
                GrantDoc {
                    grantee: GranteeDoc::CanonicalUser {
                        id: "bob".into(),
                        display_name: None,
                    },
                    permission: "READ".into(),
                },
                GrantDoc {
                    grantee: GranteeDoc::Group {
                        uri: "http://acs.amazonaws.com/groups/global/AllUsers".into(),
                    },
                    permission: "READ".into(),
                },
            ],
        };
        let sdk = doc.to_sdk(|_| true).unwrap();
        let back = AclDoc::from_sdk(sdk.owner(), sdk.grants());
        assert_eq!(back, doc);
        let filtered = doc
            .to_sdk(|g| !matches!(g, GranteeDoc::CanonicalUser { .. }))
            .unwrap();
        assert_eq!(filtered.grants().len(), 1);
    }
}
