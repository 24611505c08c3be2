//! What strata asks `radosgw-admin`: a bucket's owner and a user's S3 keys.
//!
//! The commands run through [`crate::exec`]; their JSON is read by the pure
//! `parse_*` functions below, tested on recorded output in
//! `tests/fixtures/rgw/`.

use super::RgwError;
use crate::exec::Cmd;
use serde::Deserialize;

/// An S3 key pair of a radosgw user.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // why: secrets never reach logs
        f.debug_struct("Keys")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
struct BucketStats {
    owner: String,
}

#[derive(Deserialize)]
struct UserInfo {
    user_id: String,
    #[serde(default)]
    keys: Vec<UserKey>,
}

#[derive(Deserialize)]
struct UserKey {
    access_key: String,
    secret_key: String,
}

/// The owner's uid from `radosgw-admin bucket stats --bucket B` output.
pub fn parse_bucket_owner(json: &[u8]) -> Result<String, serde_json::Error> {
    Ok(serde_json::from_slice::<BucketStats>(json)?.owner)
}

/// The uid and first S3 key pair (if any) from `radosgw-admin user info` output.
pub fn parse_user_keys(json: &[u8]) -> Result<(String, Option<Keys>), serde_json::Error> {
    let info: UserInfo = serde_json::from_slice(json)?;
    let keys = info.keys.into_iter().next().map(|k| Keys {
        access_key: k.access_key,
        secret_key: k.secret_key,
    });
    Ok((info.user_id, keys))
}

/// `radosgw-admin bucket stats --bucket BUCKET` -> owner uid.
pub fn bucket_owner(bucket: &str) -> Result<String, RgwError> {
    let what = format!("looking up the owner of bucket {bucket} (does it exist?)");
    let out = Cmd::new("radosgw-admin")
        .args(["bucket", "stats", "--bucket", bucket, "--format=json"])
        .run()
        .map_err(|source| RgwError::Admin {
            what: what.clone(),
            source,
        })?;
    parse_bucket_owner(&out.stdout).map_err(|source| RgwError::AdminOutput { what, source })
}

/// Whether a user exists, and its first S3 key pair.
pub fn user_keys(uid: &str) -> Result<Option<Keys>, RgwError> {
    match user_info(uid)? {
        None => Err(RgwError::NoSuchUser {
            uid: uid.to_owned(),
        }),
        Some(keys) => Ok(keys),
    }
}

/// `radosgw-admin user info --uid UID`: `None` if there is no such user,
/// `Some(None)` if it has no S3 keys.
pub fn user_info(uid: &str) -> Result<Option<Option<Keys>>, RgwError> {
    let what = format!("looking up radosgw user {uid}");
    // why: radosgw-admin reports a missing user as exit 22 (EINVAL) with "could not fetch user info"
    let out = Cmd::new("radosgw-admin")
        .args(["user", "info", "--uid", uid, "--format=json"])
        .ok_codes(&[0, 22])
        .run()
        .map_err(|source| RgwError::Admin {
            what: what.clone(),
            source,
        })?;
    if out.code != 0 {
        return Ok(None);
    }
    let (_, keys) =
        parse_user_keys(&out.stdout).map_err(|source| RgwError::AdminOutput { what, source })?;
    Ok(Some(keys))
}

/// The bucket owner and their keys, as Deltaic found them.
pub fn bucket_credentials(bucket: &str) -> Result<(String, Keys), RgwError> {
    let owner = bucket_owner(bucket)?;
    let keys = user_keys(&owner)?.ok_or_else(|| RgwError::NoKeys { uid: owner.clone() })?;
    Ok((owner, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rgw")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn owner_from_recorded_bucket_stats() {
        assert_eq!(
            parse_bucket_owner(&fixture("bucket-stats.json")).unwrap(),
            "alice"
        );
    }

    #[test]
    fn keys_from_recorded_user_info() {
        let (uid, keys) = parse_user_keys(&fixture("user-info-alice.json")).unwrap();
        assert_eq!(uid, "alice");
        let keys = keys.unwrap();
        assert_eq!(keys.access_key, "AKIAFIXTUREALICE0001");
        assert!(!format!("{keys:?}").contains("fixture-secret"));
    }

    #[test]
    fn a_user_without_keys_and_garbage() {
        let (_, keys) = parse_user_keys(br#"{"user_id":"x","keys":[]}"#).unwrap();
        assert!(keys.is_none());
        assert!(parse_bucket_owner(b"failure: (2002)").is_err());
    }
}
