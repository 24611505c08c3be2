//! gpg: the fixed argument vectors strata runs it with, and the judgement of
//! its machine-readable status output (`--status-file`).
//!
//! Status goes to a file of its own, not stderr, so that nothing gpg prints
//! for humans (user IDs chosen by whoever made a key) can pose as a status
//! line. A decryption is trusted only with GOODSIG and VALIDSIG naming the
//! configured signing key, `DECRYPTION_OKAY`, no `BADSIG/ERRSIG/DECRYPTION_FAILED`,
//! and exit status 0.
//!
//! Decryption is bounded: `--max-output` is the ciphertext's size (strata
//! packs without gpg compression, so its plaintext is never larger), and
//! `-vv` lists each packet on stderr as gpg parses it, where a
//! [`PacketWatch`] stops the unpack at the first packet strata never writes
//! (a compressed one, say) before gpg expands it into the spool.

use std::ffi::OsString;
use std::path::Path;

/// Options every gpg call gets: no config file, no prompts, AES256, no
/// compression inside gpg (the stream is already compressed).
#[must_use]
pub fn base_args(status_file: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = [
        "--batch",
        "--no-tty",
        "--no-options",
        "--personal-cipher-preferences",
        "AES256",
        "--personal-digest-preferences",
        "SHA256",
        // why: recipients and signers come from this keyring only; no
        // lookup by mail address (WKD, keyservers) goes out to the network
        "--auto-key-locate",
        "local",
        "--no-auto-key-retrieve",
        "--compress-algo",
        "none",
        "--status-file",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    v.push(status_file.as_os_str().to_owned());
    v
}

/// Sign with `signer` and encrypt to every recipient, stdin to stdout.
#[must_use]
pub fn sign_encrypt_args(status_file: &Path, signer: &str, recipients: &[String]) -> Vec<OsString> {
    let mut v = base_args(status_file);
    v.extend(
        [
            "--cipher-algo",
            "AES256",
            // why: recipients are named by the config, which is the trust decision; gpg's web of trust would refuse unsigned keys in batch mode
            "--trust-model",
            "always",
            "-s",
            "-e",
            "-u",
            signer,
        ]
        .iter()
        .map(OsString::from),
    );
    for r in recipients {
        v.push("-r".into());
        v.push(r.into());
    }
    v
}

/// Decrypt (and check the signature of) stdin to stdout, writing at most
/// `max_output` bytes, and list every packet on stderr as it is parsed
/// (`-vv`) for a [`PacketWatch`].
#[must_use]
pub fn decrypt_args(status_file: &Path, max_output: u64) -> Vec<OsString> {
    let mut v = base_args(status_file);
    // why: strata packs without gpg compression, so a genuine plaintext is never larger than its ciphertext
    v.push("--max-output".into());
    v.push(max_output.to_string().into());
    v.push("-vv".into());
    v.push("-d".into());
    v
}

/// `gpg --with-colons --fixed-list-mode ARGS` on the keyring (a listing
/// for [`key_expiry`] and [`unusable_keys`]); its output, `None` when gpg
/// fails (no such key).
#[must_use]
pub fn list_colons(gpg: &str, args: &[&str]) -> Option<String> {
    crate::exec::Cmd::new(gpg)
        .args([
            "--batch",
            "--no-tty",
            "--no-options",
            "--with-colons",
            "--fixed-list-mode",
        ])
        .args(args)
        .run()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// When the key that made `sig` expires, from `gpg --with-colons` output
/// of its primary key (`--list-keys PRIMARY`): the earlier of the primary's
/// and (for a signing subkey) the subkey's expiry, `None` if neither
/// expires or the listing does not show the key.
#[must_use]
pub fn key_expiry(colons: &str, sig: &ValidSig) -> Option<u64> {
    // A `pub` or `sub` record gives the expiry (field 7); the `fpr` record
    // after it names the key.
    let mut pending: Option<(bool, Option<u64>)> = None;
    let mut primary: Option<Option<u64>> = None;
    let mut signing: Option<Option<u64>> = None;
    for line in colons.lines() {
        let f: Vec<&str> = line.split(':').collect();
        match f.first().copied() {
            Some(kind @ ("pub" | "sub")) => {
                let expires = f.get(6).and_then(|t| t.parse::<u64>().ok());
                pending = Some((kind == "pub", expires));
            }
            Some("fpr") => {
                let Some((is_pub, expires)) = pending.take() else {
                    continue;
                };
                let fpr = f.get(9).map(|x| x.to_ascii_uppercase()).unwrap_or_default();
                if is_pub && fpr == sig.primary {
                    primary = Some(expires);
                }
                if fpr == sig.fpr {
                    signing = Some(expires);
                }
            }
            _ => {}
        }
    }
    let (primary, signing) = (primary?, signing?);
    match (primary, signing) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// After a `gpg -se` that failed: the first key it refused (from its
/// status file), as an error that says what is wrong with the key.
#[must_use]
pub fn refused_key(gpg: &str, status_file: &Path) -> Option<super::ArchiveError> {
    let text = std::fs::read_to_string(status_file).ok()?;
    unusable_keys(&text, |args| list_colons(gpg, args))
        .into_iter()
        .next()
        .map(|k| super::ArchiveError::GpgKey {
            setting: k.setting,
            key: k.key,
            problem: k.problem,
        })
}

/// A key gpg would not use to sign or encrypt (`INV_SGNR` / `INV_RECP`
/// in its status), and what the keyring says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusableKey {
    /// The config key that names it.
    pub setting: &'static str,
    /// The key as configured (as gpg echoes it).
    pub key: String,
    pub problem: String,
}

/// The keys a failed `gpg -se` refused, from its status text; `list` runs
/// `gpg --with-colons` with the given arguments and returns its output
/// (`None` when gpg fails, e.g. no such key).
pub fn unusable_keys(status: &str, list: impl Fn(&[&str]) -> Option<String>) -> Vec<UnusableKey> {
    let mut out = Vec::new();
    for line in status.lines() {
        let w: Vec<&str> = line.split_ascii_whitespace().collect();
        let (setting, code, key, secret) = match w.as_slice() {
            ["[GNUPG:]", "INV_RECP", code, key, ..] => {
                ("archive-gpg-recipients", *code, *key, false)
            }
            ["[GNUPG:]", "INV_SGNR", code, key, ..] => {
                ("archive-gpg-signing-key", *code, *key, true)
            }
            _ => continue,
        };
        let public = list(&["--list-keys", "--", key]);
        let problem = match public.as_deref().and_then(validity) {
            None => "it is not in gpg's keyring (GNUPGHOME)".to_owned(),
            Some(Validity::Revoked) => "the key is revoked".to_owned(),
            Some(Validity::Expired(when)) => format!("the key expired on {}", date(when)),
            Some(Validity::Usable)
                if secret && list(&["--list-secret-keys", "--", key]).is_none() =>
            {
                "its secret key is not in gpg's keyring, so it cannot sign".to_owned()
            }
            Some(Validity::Usable) => match code {
                "3" => "the key cannot be used for this (no usable subkey to sign or encrypt with)"
                    .to_owned(),
                "2" => "it names more than one key".to_owned(),
                _ => format!("gpg refused it (reason {code} in gpg's INV_RECP/INV_SGNR codes)"),
            },
        };
        out.push(UnusableKey {
            setting,
            key: key.to_owned(),
            problem,
        });
    }
    out
}

enum Validity {
    Usable,
    Revoked,
    Expired(u64),
}

/// The primary key's validity from `--with-colons` output (field 2 of the
/// first `pub`/`sec` record: `r` revoked, `e` expired, with field 7 the
/// expiry).
fn validity(colons: &str) -> Option<Validity> {
    let f: Vec<&str> = colons
        .lines()
        .find(|l| l.starts_with("pub:") || l.starts_with("sec:"))?
        .split(':')
        .collect();
    Some(match f.get(1).copied() {
        Some("r") => Validity::Revoked,
        Some("e") => Validity::Expired(f.get(6).and_then(|t| t.parse().ok()).unwrap_or(0)),
        _ => Validity::Usable,
    })
}

/// A time (seconds since the epoch) as the date a key expired on.
#[must_use]
pub fn date(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(|| secs.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// The `OpenPGP` packet tag of a `-vv` packet line (`# off=0 ctb=84 tag=1 ...`).
#[must_use]
pub fn packet_tag(line: &str) -> Option<u8> {
    let rest = line.strip_prefix("# off=")?;
    rest.split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("tag="))
        .and_then(|t| t.parse().ok())
}

/// Whether strata's `gpg -s -e --compress-algo none` writes packets with
/// this tag: public-key encrypted session keys (1), the encrypted data
/// (18, or 20 for AEAD), a one-pass signature (4), the literal data (11),
/// the signature (2). Never a compressed packet (8).
#[must_use]
pub fn strata_writes(tag: u8) -> bool {
    matches!(tag, 1 | 2 | 4 | 11 | 18 | 20)
}

/// A stderr tee for `gpg -vv -d`: notes the first packet strata never
/// writes, so that the caller stops before gpg expands it.
#[derive(Clone, Default)]
pub struct PacketWatch {
    /// The tag of the first foreign packet, 0 while there is none.
    foreign: std::sync::Arc<std::sync::atomic::AtomicU8>,
    line: Vec<u8>,
}

impl PacketWatch {
    /// The tag of the first packet strata does not write, if one was seen.
    #[must_use]
    pub fn foreign(&self) -> Option<u8> {
        match self.foreign.load(std::sync::atomic::Ordering::SeqCst) {
            0 => None,
            t => Some(t),
        }
    }

    fn line_done(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        if let Some(tag) = packet_tag(&line)
            && !strata_writes(tag)
        {
            // why: tag 0 is reserved in OpenPGP, so it can stand for "none"; a tag-0 packet is foreign too
            let t = if tag == 0 { u8::MAX } else { tag };
            let _ = self.foreign.compare_exchange(
                0,
                t,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        self.line.clear();
    }
}

impl std::io::Write for PacketWatch {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for b in buf {
            if *b == b'\n' {
                self.line_done();
            } else if self.line.len() < 4096 {
                self.line.push(*b);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a status file says about a decryption.
// why: one flag per status keyword gpg may print, as gpg names them
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    /// Long key IDs of GOODSIG lines.
    pub goodsig: Vec<String>,
    /// Long key IDs of EXPKEYSIG lines: a good signature by a key that has
    /// expired since.
    pub expkeysig: Vec<String>,
    /// Expiry times (seconds since the epoch) of KEYEXPIRED lines after the
    /// last NEWSIG: the keys of the signature being checked.
    pub keyexpired: Vec<u64>,
    /// VALIDSIG lines.
    pub validsig: Vec<ValidSig>,
    pub badsig: bool,
    pub errsig: bool,
    pub decryption_okay: bool,
    pub decryption_failed: bool,
    pub sig_created: bool,
    pub end_encryption: bool,
}

/// Parse `[GNUPG:] KEYWORD args...` lines; other lines are ignored.
#[must_use]
pub fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    for line in text.lines() {
        let mut w = line.split_ascii_whitespace();
        if w.next() != Some("[GNUPG:]") {
            continue;
        }
        let rest: Vec<&str> = w.collect();
        match rest.as_slice() {
            ["GOODSIG", keyid, ..] => s.goodsig.push(keyid.to_ascii_uppercase()),
            ["EXPKEYSIG", keyid, ..] => s.expkeysig.push(keyid.to_ascii_uppercase()),
            ["NEWSIG", ..] => s.keyexpired.clear(),
            ["KEYEXPIRED", when, ..] => s.keyexpired.extend(when.parse::<u64>().ok()),
            ["VALIDSIG", fpr, fields @ ..] => {
                // why: field 10 of VALIDSIG is the primary key's fingerprint (absent from very old gpg)
                let primary = fields.get(8).copied().unwrap_or(fpr);
                s.validsig.push(ValidSig {
                    fpr: fpr.to_ascii_uppercase(),
                    primary: primary.to_ascii_uppercase(),
                    // why: field 3 is the signature's creation time, in seconds unless gpg runs with ISO dates
                    created: fields.get(1).and_then(|t| t.parse().ok()),
                });
            }
            ["BADSIG" | "REVKEYSIG", ..] => s.badsig = true,
            ["ERRSIG", ..] => s.errsig = true,
            ["DECRYPTION_OKAY", ..] => s.decryption_okay = true,
            ["DECRYPTION_FAILED", ..] => s.decryption_failed = true,
            ["SIG_CREATED", ..] => s.sig_created = true,
            ["END_ENCRYPTION", ..] => s.end_encryption = true,
            _ => {}
        }
    }
    s
}

/// Whether `configured` (a fingerprint, or a long key ID) names `fpr`.
fn names(configured: &str, fpr: &str) -> bool {
    !configured.is_empty()
        && configured.len() >= 16
        && configured.bytes().all(|b| b.is_ascii_hexdigit())
        && fpr.ends_with(configured)
}

/// One VALIDSIG line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSig {
    /// The signing key's fingerprint.
    pub fpr: String,
    /// The primary key's fingerprint.
    pub primary: String,
    /// When the signature was made (seconds since the epoch), if given so.
    pub created: Option<u64>,
}

/// A trusted decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A good signature by the configured key.
    Good,
    /// A good signature by the configured key, made while the key was
    /// valid; the key has expired since (at this time, seconds since the epoch).
    GoodByExpiredKey { expired: u64 },
}

/// Judge a decryption's status against the configured signing key; `Err`
/// says why it is not trusted. `expiry_of` tells when the key that made a
/// signature expires (from the keyring: [`key_expiry`]); it is asked only
/// when gpg reports the signer's key expired.
pub fn judge_decryption(
    s: &Status,
    signing_key: &str,
    expiry_of: impl Fn(&ValidSig) -> Option<u64>,
) -> Result<Verdict, String> {
    let key = crate::config::normalise_key_id(signing_key);
    if s.decryption_failed || !s.decryption_okay {
        return Err("gpg could not decrypt it (tampered, truncated, or not for our keys)".into());
    }
    if s.badsig {
        return Err("gpg reports a BAD signature (the archive was altered)".into());
    }
    if s.errsig {
        return Err("gpg could not check a signature (signed by an unknown key?)".into());
    }
    if (s.goodsig.is_empty() && s.expkeysig.is_empty()) || s.validsig.is_empty() {
        return Err("it is not signed (encrypted but unsigned)".into());
    }
    let by_key: Vec<&ValidSig> = s
        .validsig
        .iter()
        .filter(|v| names(&key, &v.fpr) || names(&key, &v.primary))
        .collect();
    if by_key.is_empty() {
        let who: Vec<&str> = s.validsig.iter().map(|v| v.fpr.as_str()).collect();
        return Err(format!(
            "it is signed by {}, not by the configured archive-gpg-signing-key {signing_key}",
            who.join(", ")
        ));
    }
    let matches = |ids: &[String]| {
        ids.iter().any(|id| {
            by_key
                .iter()
                .any(|v| v.fpr.ends_with(id.as_str()) || v.primary.ends_with(id.as_str()))
        })
    };
    if matches(&s.goodsig) {
        return Ok(Verdict::Good);
    }
    if !matches(&s.expkeysig) {
        return Err("GOODSIG and VALIDSIG name different keys".into());
    }
    // why: an expired key still proves a signature made before it expired;
    // one made after is not trusted. The keyring says when the signer's key
    // expired: KEYEXPIRED lines cannot be told apart when gpg checks its
    // trustdb on the way and reports every expired key it meets. Only if
    // the keyring cannot tell, the earliest of them decides (refusing
    // rather than trusting wrongly).
    let expired = by_key
        .iter()
        .filter_map(|v| expiry_of(v))
        .min()
        .or_else(|| s.keyexpired.iter().copied().min());
    let created = by_key.iter().filter_map(|v| v.created).max();
    match (created, expired) {
        (Some(c), Some(e)) if c < e => Ok(Verdict::GoodByExpiredKey { expired: e }),
        (Some(_), Some(_)) => Err("it was signed after the signing key had expired".into()),
        _ => Err(
            "it is signed by the configured key, which has expired, and gpg did not say when"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPR: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

    fn good() -> String {
        format!(
            "[GNUPG:] DECRYPTION_KEY X Y u\n[GNUPG:] BEGIN_DECRYPTION\n[GNUPG:] DECRYPTION_OKAY\n\
             [GNUPG:] GOODSIG 89ABCDEF01234567 Signer <s@x>\n\
             [GNUPG:] VALIDSIG {FPR} 2026-11-22 1700000000 0 4 0 22 8 00 {FPR}\n\
             [GNUPG:] END_DECRYPTION\n"
        )
    }

    #[test]
    fn good_signature_by_the_configured_key_passes() {
        let s = parse_status(&good());
        assert_eq!(judge_decryption(&s, FPR, |_| None), Ok(Verdict::Good));
        assert_eq!(
            judge_decryption(&s, &FPR.to_lowercase(), |_| None),
            Ok(Verdict::Good)
        );
        assert_eq!(
            judge_decryption(&s, "0x89ABCDEF01234567", |_| None),
            Ok(Verdict::Good)
        );
    }

    #[test]
    fn other_signer_unsigned_bad_and_undecryptable_fail() {
        let s = parse_status(&good());
        assert!(
            judge_decryption(&s, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", |_| None)
                .unwrap_err()
                .contains("not by the configured")
        );
        // a short key id is not accepted as naming a key
        assert!(judge_decryption(&s, "01234567", |_| None).is_err());
        let unsigned = parse_status("[GNUPG:] DECRYPTION_OKAY\n[GNUPG:] END_DECRYPTION\n");
        assert!(
            judge_decryption(&unsigned, FPR, |_| None)
                .unwrap_err()
                .contains("unsigned")
        );
        let bad = parse_status(&format!("{}[GNUPG:] BADSIG 89ABCDEF01234567 x\n", good()));
        assert!(
            judge_decryption(&bad, FPR, |_| None)
                .unwrap_err()
                .contains("BAD")
        );
        let failed = parse_status("[GNUPG:] DECRYPTION_FAILED\n");
        assert!(judge_decryption(&failed, FPR, |_| None).is_err());
    }

    /// A signature by FPR made at `made`, checked after the key expired at
    /// `expired`, with `extra` status lines.
    fn expired(made: u64, expired: u64, extra: &str) -> Status {
        parse_status(&format!(
            "[GNUPG:] KEYEXPIRED 1\n[GNUPG:] DECRYPTION_OKAY\n[GNUPG:] NEWSIG\n\
             [GNUPG:] KEYEXPIRED {expired}\n[GNUPG:] EXPKEYSIG 89ABCDEF01234567 Signer <s@x>\n\
             [GNUPG:] VALIDSIG {FPR} 2020-06-01 {made} 0 4 0 22 8 00 {FPR}\n{extra}"
        ))
    }

    #[test]
    fn a_signature_made_before_the_key_expired_passes_with_a_note() {
        assert_eq!(
            judge_decryption(&expired(1_590_969_600, 1_609_502_400, ""), FPR, |_| None),
            Ok(Verdict::GoodByExpiredKey {
                expired: 1_609_502_400
            })
        );
        let after = judge_decryption(&expired(1_609_502_401, 1_609_502_400, ""), FPR, |_| None);
        assert!(
            after
                .unwrap_err()
                .contains("after the signing key had expired")
        );
        let bad = expired(1, 2, "[GNUPG:] BADSIG 89ABCDEF01234567 x\n");
        assert!(
            judge_decryption(&bad, FPR, |_| None)
                .unwrap_err()
                .contains("BAD")
        );
        let err = expired(1, 2, "[GNUPG:] ERRSIG 89ABCDEF01234567 22 8 00 1 9\n");
        assert!(judge_decryption(&err, FPR, |_| None).is_err());
        let revoked = expired(1, 2, "[GNUPG:] REVKEYSIG 89ABCDEF01234567 x\n");
        assert!(judge_decryption(&revoked, FPR, |_| None).is_err());
        assert!(
            judge_decryption(
                &expired(1, 2, ""),
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
                |_| None
            )
            .is_err()
        );
    }

    /// gpg 2.2.40's status when it checks its trustdb while verifying:
    /// the signer's KEYEXPIRED, then one for an unrelated expired key
    /// (whose `KEY_CONSIDERED` comes after it, not before).
    fn with_trustdb_check(made: u64, signer_expired: u64, other_expired: u64) -> Status {
        parse_status(&format!(
            "[GNUPG:] DECRYPTION_OKAY\n[GNUPG:] NEWSIG\n\
             [GNUPG:] KEY_CONSIDERED {FPR} 0\n[GNUPG:] KEYEXPIRED {signer_expired}\n\
             [GNUPG:] KEY_CONSIDERED {FPR} 0\n[GNUPG:] KEY_CONSIDERED {FPR} 0\n\
             [GNUPG:] KEYEXPIRED {other_expired}\n\
             [GNUPG:] KEY_CONSIDERED 74AD6CAEC41E4A157B38E94A16E525C597D54851 0\n\
             [GNUPG:] EXPKEYSIG 89ABCDEF01234567 Signer <s@x>\n\
             [GNUPG:] VALIDSIG {FPR} 2026-12-01 {made} 0 4 0 22 8 00 {FPR}\n"
        ))
    }

    #[test]
    fn the_keyring_says_when_the_signer_expired_not_a_trustdb_checks_lines() {
        let signer = |_: &ValidSig| Some(1_609_502_400);
        // signed in 2020 by a key that expired at the start of 2021; an
        // unrelated key's 2019 expiry in the status changes nothing
        assert_eq!(
            judge_decryption(
                &with_trustdb_check(1_590_969_600, 1_609_502_400, 1_559_390_400),
                FPR,
                signer
            ),
            Ok(Verdict::GoodByExpiredKey {
                expired: 1_609_502_400
            })
        );
        // signed after the signer's expiry: refused whatever other keys say
        assert!(
            judge_decryption(
                &with_trustdb_check(1_609_502_401, 1_609_502_400, 1_900_000_000),
                FPR,
                signer
            )
            .unwrap_err()
            .contains("after the signing key had expired")
        );
        // the keyring cannot tell: the earliest KEYEXPIRED decides (refused)
        assert!(
            judge_decryption(
                &with_trustdb_check(1_590_969_600, 1_609_502_400, 1_559_390_400),
                FPR,
                |_| None
            )
            .is_err()
        );
    }

    #[test]
    fn key_expiry_reads_the_primary_and_the_signing_subkey() {
        // gpg 2.2.40 --with-colons --fixed-list-mode --list-keys
        let primary_only = "tru::1:1796112860:0:3:1:5\n\
            pub:e:255:22:CFAB12C522EC4F3D:1577836800:1609502400::u:::sc:::::ed25519:::0:\n\
            fpr:::::::::E718A5B2DBB3C3041C6A3379CFAB12C522EC4F3D:\n\
            uid:e::::1577836800::5A36::Old <old@x>::::::::::0:\n";
        let sig = |fpr: &str, primary: &str| ValidSig {
            fpr: fpr.into(),
            primary: primary.into(),
            created: Some(1),
        };
        let old = "E718A5B2DBB3C3041C6A3379CFAB12C522EC4F3D";
        assert_eq!(
            key_expiry(primary_only, &sig(old, old)),
            Some(1_609_502_400)
        );
        assert_eq!(
            key_expiry(primary_only, &sig(FPR, FPR)),
            None,
            "another key"
        );
        let with_sub = "pub:u:255:22:AAAA:1:2000000000::u:::cS:::::ed25519:::0:\n\
            fpr:::::::::1111111111111111111111111111111111111111:\n\
            uid:u::::1::X::Y <y@x>::::::::::0:\n\
            sub:e:255:22:BBBB:1:1700000000:::::s:::::ed25519::\n\
            fpr:::::::::2222222222222222222222222222222222222222:\n\
            sub:u:255:18:CCCC:1::::::e:::::cv25519::\n\
            fpr:::::::::3333333333333333333333333333333333333333:\n";
        let p = "1111111111111111111111111111111111111111";
        let sub = "2222222222222222222222222222222222222222";
        // the subkey expired first
        assert_eq!(key_expiry(with_sub, &sig(sub, p)), Some(1_700_000_000));
        // signed by the primary itself: its own expiry
        assert_eq!(key_expiry(with_sub, &sig(p, p)), Some(2_000_000_000));
        let never = "pub:u:255:22:AAAA:1:::u:::cS:::::ed25519:::0:\n\
            fpr:::::::::1111111111111111111111111111111111111111:\n";
        assert_eq!(key_expiry(never, &sig(p, p)), None);
    }

    #[test]
    fn refused_keys_are_explained_from_the_keyring() {
        let status = "[GNUPG:] INV_RECP 0 AAAA\n[GNUPG:] INV_RECP 0 BBBB\n[GNUPG:] INV_SGNR 9 CCCC\n\
                      [GNUPG:] INV_RECP 3 DDDD\n[GNUPG:] FAILURE sign-encrypt 53\n";
        let list = |args: &[&str]| -> Option<String> {
            match (args[0], args[2]) {
                (_, "AAAA") => Some("pub:r:255:22:AAAA:1:::-:::sc::::::\n".into()),
                (_, "BBBB") => Some("pub:e:255:22:BBBB:1:1609502400::-:::sc::::::\n".into()),
                ("--list-keys", "CCCC" | "DDDD") => {
                    Some("pub:u:255:22:X:1:::u:::sc::::::\n".into())
                }
                _ => None,
            }
        };
        let got: Vec<String> = unusable_keys(status, list)
            .into_iter()
            .map(|k| format!("{} {}: {}", k.setting, k.key, k.problem))
            .collect();
        assert_eq!(
            got,
            [
                "archive-gpg-recipients AAAA: the key is revoked",
                "archive-gpg-recipients BBBB: the key expired on 2021-01-01",
                "archive-gpg-signing-key CCCC: its secret key is not in gpg's keyring, so it cannot sign",
                "archive-gpg-recipients DDDD: the key cannot be used for this (no usable subkey to sign or encrypt with)",
            ]
        );
    }

    #[test]
    fn packet_lines_are_judged_by_their_tag() {
        use std::io::Write;
        assert_eq!(
            packet_tag("# off=96 ctb=d2 tag=18 hlen=3 plen=196 new-ctb"),
            Some(18)
        );
        assert_eq!(packet_tag(":compressed packet: algo=3"), None);
        assert_eq!(packet_tag("gpg: # off=1 tag=8"), None);
        for (tag, ok) in [
            (1, true),
            (18, true),
            (4, true),
            (11, true),
            (2, true),
            (8, false),
            (3, false),
            (9, false),
        ] {
            assert_eq!(strata_writes(tag), ok, "{tag}");
        }
        let mut w = PacketWatch::default();
        let seen = w.clone();
        w.write_all(
            b"# off=0 ctb=84 tag=1 hlen=2 plen=94\n:pubkey enc packet\n# off=117 ctb=a3 ta",
        )
        .unwrap();
        assert_eq!(seen.foreign(), None);
        w.write_all(b"g=8 hlen=1 plen=0 indeterminate\n# off=119 tag=9\n")
            .unwrap();
        assert_eq!(seen.foreign(), Some(8));
    }

    #[test]
    fn lines_without_the_prefix_are_ignored() {
        let s = parse_status(&format!(
            "gpg: Good signature from \"[GNUPG:] VALIDSIG {FPR}\"\n[GNUPG:] DECRYPTION_OKAY\n"
        ));
        assert!(s.validsig.is_empty());
    }
}
