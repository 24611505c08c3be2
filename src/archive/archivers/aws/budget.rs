//! The hourly retrieval budget shared with Deltaic: the `/bandwidth` item of
//! the `SimpleDB` domain, read and written exactly as Deltaic does, so that
//! Deltaic processes and strata processes retrieving from one vault never
//! reserve more than their rate together.
//!
//! The item (all values decimal text):
//! - `serial`: bumped by every reservation; a reservation is a put
//!   conditional on the serial it read, so two writers cannot both win.
//! - `bandwidth-<slot start, ISO 8601 with +00:00>`: bytes per hour reserved
//!   in that hour. Glacier (as Deltaic priced it) bills a retrieval of `n`
//!   bytes as `n / 4` per hour over 4 hours, so a reservation adds
//!   `ceil(n / 4)` to the current slot and the 3 after it. Slots before the
//!   current one are deleted, without the serial (they are stale for good).
//! - `current-month` (`YYYY-MM-01`) and `max-bandwidth-month`: the month's
//!   peak hourly reservation, reset when the month changes; `archive cost`
//!   reports it.
//!
//! As Deltaic: nothing is reserved within 2 minutes of a slot boundary
//! (clock skew between hosts must not let two of them book one slot from
//! both sides), and a process may reserve up to its own rate minus what the
//! slots already hold.
//!
//! Owns: the pure steps ([`prepare`], [`decide`]), tested by tables, and
//! [`reserve`], which applies them against a [`SimpleDb`].

use super::sdb::{Expected, Item, SdbError, SimpleDb};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use std::collections::BTreeMap;

/// The item's name.
pub const BANDWIDTH_ITEM: &str = "/bandwidth";

/// Hours a retrieval is billed over.
pub const BILLING_HOURS: u64 = 4;

const SLOT_PREFIX: &str = "bandwidth-";

/// The budget's time slots: an hour each, as Deltaic's; shorter only in
/// tests (`STRATA_AWS_SLOT_SECS`). The slop is a thirtieth of a slot
/// (Deltaic's 2 minutes of an hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub secs: i64,
}

impl Default for Slots {
    fn default() -> Slots {
        Slots { secs: 3600 }
    }
}

impl Slots {
    /// The start of the slot holding `t`.
    #[must_use]
    pub fn start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let s = t.timestamp().div_euclid(self.secs) * self.secs;
        Utc.timestamp_opt(s, 0).single().unwrap_or(t)
    }

    #[must_use]
    pub fn len(&self) -> Duration {
        Duration::seconds(self.secs)
    }

    #[must_use]
    pub fn slop(&self) -> Duration {
        Duration::milliseconds(self.secs * 1000 / 30)
    }

    /// The attribute of the slot starting at `start`.
    #[must_use]
    pub fn attr(start: DateTime<Utc>) -> String {
        format!("{SLOT_PREFIX}{}", start.format("%Y-%m-%dT%H:%M:%S+00:00"))
    }
}

/// Why the item cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "the {BANDWIDTH_ITEM} item's `{attr}` is {value:?}, not a number; fix or delete that attribute"
    )]
    NotANumber { attr: String, value: String },
    #[error("the {BANDWIDTH_ITEM} item: {0}")]
    Multivalued(String),
    #[error(transparent)]
    Sdb(#[from] SdbError),
}

/// The item as read, ready to be written back (Deltaic's order: serial
/// bumped, stale slots dropped, month rolled over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The serial a put must find (`None`: the item has none yet).
    pub expected_serial: Option<String>,
    /// Every attribute to write back, the serial already bumped.
    pub data: BTreeMap<String, String>,
    /// Slot attributes before the current slot, to delete.
    pub stale: Vec<String>,
}

fn number(attr: &str, value: &str) -> Result<u64, BudgetError> {
    value.trim().parse().map_err(|_| BudgetError::NotANumber {
        attr: attr.to_owned(),
        value: value.to_owned(),
    })
}

/// Prepare `item` for an update at `now`.
pub fn prepare(item: &Item, now: DateTime<Utc>, slots: Slots) -> Result<Prepared, BudgetError> {
    let mut data = BTreeMap::new();
    for (name, _) in &item.attrs {
        if !data.contains_key(name) {
            let v = item.single(name).map_err(BudgetError::Multivalued)?;
            data.insert(name.clone(), v.unwrap_or_default().to_owned());
        }
    }
    let expected_serial = data.get("serial").cloned();
    let serial = match &expected_serial {
        Some(s) => number("serial", s)?,
        None => 0,
    };
    data.insert("serial".into(), (serial + 1).to_string());
    let current = slots.start(now);
    let stale: Vec<String> = data
        .keys()
        .filter(|k| {
            k.strip_prefix(SLOT_PREFIX)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t < current)
        })
        .cloned()
        .collect();
    for k in &stale {
        data.remove(k);
    }
    let month = format!("{:04}-{:02}-01", now.year(), now.month());
    if data.get("current-month") != Some(&month) {
        data.insert("current-month".into(), month);
        data.insert("max-bandwidth-month".into(), "0".into());
    }
    Ok(Prepared {
        expected_serial,
        data,
        stale,
    })
}

/// The month's peak hourly reservation, in bytes per hour.
pub fn month_peak(prepared: &Prepared) -> Result<u64, BudgetError> {
    let v = prepared
        .data
        .get("max-bandwidth-month")
        .map_or("0", String::as_str);
    number("max-bandwidth-month", v)
}

/// What a reservation attempt may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing now; try again at `retry_at`.
    Wait { retry_at: DateTime<Utc> },
    /// Put `data` (conditional on the serial) and then request `len` bytes:
    /// `per_hour` is reserved in the slot starting at `slot` and the 3 after.
    Reserve {
        slot: DateTime<Utc>,
        len: u64,
        per_hour: u64,
        data: BTreeMap<String, String>,
    },
}

/// Decide a reservation at `now` for a process retrieving at `rate` bytes
/// per hour; `choose(allowed)` returns how many bytes to request given that
/// at most `allowed` may be (0: none fits).
pub fn decide(
    prepared: &Prepared,
    now: DateTime<Utc>,
    slots: Slots,
    rate: u64,
    choose: impl FnOnce(u64) -> u64,
) -> Result<Decision, BudgetError> {
    let slot = slots.start(now);
    let next = slot + slots.len();
    if now - slot < slots.slop() {
        return Ok(Decision::Wait {
            retry_at: slot + slots.slop(),
        });
    }
    if next - now < slots.slop() {
        return Ok(Decision::Wait {
            retry_at: next + slots.slop(),
        });
    }
    let attrs: Vec<String> = (0..4)
        .map(|n| Slots::attr(slot + slots.len() * n))
        .collect();
    let mut held = Vec::with_capacity(attrs.len());
    for a in &attrs {
        held.push(match prepared.data.get(a) {
            Some(v) => number(a, v)?,
            None => 0,
        });
    }
    // why: later slots never hold more than the current one when every writer books 4 equal slots; the maximum is the safe reading of an item that breaks that
    let busiest = held.iter().copied().max().unwrap_or(0);
    let available = rate.saturating_sub(busiest);
    let len = choose(available.saturating_mul(BILLING_HOURS));
    if len == 0 {
        return Ok(Decision::Wait {
            retry_at: next + slots.slop(),
        });
    }
    let per_hour = len.div_ceil(BILLING_HOURS);
    let mut data = prepared.data.clone();
    for (a, h) in attrs.iter().zip(&held) {
        data.insert(a.clone(), (h + per_hour).to_string());
    }
    let peak = month_peak(prepared)?.max(held[0] + per_hour);
    data.insert("max-bandwidth-month".into(), peak.to_string());
    Ok(Decision::Reserve {
        slot,
        len,
        per_hour,
        data,
    })
}

/// The outcome of [`reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Request `len` bytes now.
    Granted { len: u64, slot: DateTime<Utc> },
    /// Nothing now; try again at `retry_at`.
    Wait { retry_at: DateTime<Utc> },
}

/// Reserve budget in `domain`'s item for a process retrieving at `rate`
/// bytes per hour, retrying when another writer wins the conditional put.
pub fn reserve(
    db: &dyn SimpleDb,
    domain: &str,
    slots: Slots,
    rate: u64,
    now: &dyn Fn() -> DateTime<Utc>,
    choose: &dyn Fn(u64) -> u64,
) -> Result<Grant, BudgetError> {
    loop {
        let item = db.get_attributes(domain, BANDWIDTH_ITEM, true)?;
        let t = now();
        let prepared = prepare(&item, t, slots)?;
        if !prepared.stale.is_empty() {
            db.delete_attributes(domain, BANDWIDTH_ITEM, &prepared.stale)?;
        }
        match decide(&prepared, t, slots, rate, choose)? {
            Decision::Wait { retry_at } => return Ok(Grant::Wait { retry_at }),
            Decision::Reserve {
                slot, len, data, ..
            } => {
                let expected = match &prepared.expected_serial {
                    Some(s) => Expected::Equals("serial".into(), s.clone()),
                    None => Expected::Absent("serial".into()),
                };
                let attrs: Vec<(String, String)> = data.into_iter().collect();
                match db.put_attributes(domain, BANDWIDTH_ITEM, &attrs, Some(&expected)) {
                    Ok(()) => return Ok(Grant::Granted { len, slot }),
                    // why: another process reserved since the read; read again and decide again
                    Err(e) if e.is_conditional_failure() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// The month's peak hourly reservation recorded in `domain`'s item at
/// `now` (0 when the month has none), read without writing.
pub fn read_month_peak(
    db: &dyn SimpleDb,
    domain: &str,
    now: DateTime<Utc>,
) -> Result<u64, BudgetError> {
    let item = db.get_attributes(domain, BANDWIDTH_ITEM, true)?;
    month_peak(&prepare(&item, now, Slots::default())?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    const MIB: u64 = 1 << 20;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        Item {
            name: BANDWIDTH_ITEM.into(),
            attrs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// An item as a Deltaic process leaves it after reserving 256 MiB/hour
    /// at 10:30 on 2026-11-30 (a 1 GiB request), an earlier reservation
    /// from 09:00 still in the slots.
    fn deltaic_item() -> Item {
        item(&[
            ("serial", "7"),
            ("current-month", "2026-11-01"),
            ("max-bandwidth-month", "536870912"),
            ("bandwidth-2026-11-30T09:00:00+00:00", "268435456"),
            ("bandwidth-2026-11-30T10:00:00+00:00", "536870912"),
            ("bandwidth-2026-11-30T11:00:00+00:00", "536870912"),
            ("bandwidth-2026-11-30T12:00:00+00:00", "536870912"),
            ("bandwidth-2026-11-30T13:00:00+00:00", "268435456"),
        ])
    }

    #[test]
    fn prepare_bumps_the_serial_drops_stale_slots_and_rolls_the_month() {
        let p = prepare(
            &deltaic_item(),
            at("2026-11-30T10:30:00Z"),
            Slots::default(),
        )
        .unwrap();
        assert_eq!(p.expected_serial.as_deref(), Some("7"));
        assert_eq!(p.data["serial"], "8");
        assert_eq!(p.stale, ["bandwidth-2026-11-30T09:00:00+00:00"]);
        assert!(!p.data.contains_key("bandwidth-2026-11-30T09:00:00+00:00"));
        assert_eq!(month_peak(&p).unwrap(), 512 * MIB);
        let p = prepare(
            &deltaic_item(),
            at("2026-12-01T00:30:00Z"),
            Slots::default(),
        )
        .unwrap();
        assert_eq!(p.data["current-month"], "2026-12-01");
        assert_eq!(month_peak(&p).unwrap(), 0);
        assert_eq!(p.stale.len(), 5);
        let fresh = prepare(&item(&[]), at("2026-11-30T10:30:00Z"), Slots::default()).unwrap();
        assert_eq!(fresh.expected_serial, None);
        assert_eq!(fresh.data["serial"], "1");
        assert!(
            prepare(
                &item(&[("serial", "x")]),
                at("2026-11-30T10:30:00Z"),
                Slots::default()
            )
            .is_err()
        );
    }

    /// A decision wanted: reserve (len, per hour), or wait until a time.
    type Want = Result<(u64, u64), &'static str>;

    #[test]
    fn decisions_follow_deltaic() {
        let gib = 1u64 << 30;
        let whole = |allowed: u64| allowed.min(10 * gib);
        // (now, rate per hour, want: Some((len, per_hour)) or None = wait until)
        let cases: [(&str, u64, Want); 6] = [
            // 512 MiB/hour held at 10:00-12:00: a 1 GiB/hour process gets the other 512 for 4 hours.
            ("2026-11-30T10:30:00Z", gib, Ok((2 * gib, 512 * MIB))),
            // A rate at or under what is held: nothing until the next slot.
            (
                "2026-11-30T10:30:00Z",
                512 * MIB,
                Err("2026-11-30T11:02:00Z"),
            ),
            // Within 2 minutes of the slot's start, or of its end: wait.
            ("2026-11-30T10:01:00Z", gib, Err("2026-11-30T10:02:00Z")),
            ("2026-11-30T10:59:00Z", gib, Err("2026-11-30T11:02:00Z")),
            // At 13:30 only 13:00's 256 MiB is held.
            ("2026-11-30T13:30:00Z", gib, Ok((3 * gib, 768 * MIB))),
            // An empty month slot list: the whole rate.
            ("2026-11-30T20:30:00Z", gib, Ok((4 * gib, gib))),
        ];
        for (now, rate, want) in cases {
            let t = at(now);
            let p = prepare(&deltaic_item(), t, Slots::default()).unwrap();
            let got = decide(&p, t, Slots::default(), rate, whole).unwrap();
            match (want, got) {
                (
                    Ok((len, per_hour)),
                    Decision::Reserve {
                        len: l,
                        per_hour: h,
                        data,
                        slot,
                    },
                ) => {
                    assert_eq!((l, h), (len, per_hour), "{now}");
                    assert_eq!(slot, Slots::default().start(t));
                    for n in 0..4 {
                        let a = Slots::attr(slot + Duration::hours(n));
                        let before: u64 = p.data.get(&a).map_or(0, |v| v.parse().unwrap());
                        assert_eq!(data[&a], (before + h).to_string(), "{now} {a}");
                        assert!(
                            data[&a].parse::<u64>().unwrap() <= rate.max(before),
                            "{now} {a}"
                        );
                    }
                    assert_eq!(data["serial"], "8");
                }
                (Err(until), Decision::Wait { retry_at }) => {
                    assert_eq!(retry_at, at(until), "{now}");
                }
                (w, g) => panic!("{now}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn the_month_peak_only_grows() {
        let t = at("2026-11-30T13:30:00Z");
        let p = prepare(&deltaic_item(), t, Slots::default()).unwrap();
        let Decision::Reserve { data, .. } =
            decide(&p, t, Slots::default(), 1 << 30, |_| 4 * MIB).unwrap()
        else {
            panic!("reserves")
        };
        // 13:00 held 256 MiB, plus 1 MiB: below the month's 512 MiB peak.
        assert_eq!(data["max-bandwidth-month"], "536870912");
    }

    /// An in-memory `SimpleDB` with conditional puts, for the budget's race.
    #[derive(Default)]
    pub(crate) struct MemDb {
        pub items: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
        pub puts: Mutex<u32>,
    }

    impl SimpleDb for MemDb {
        fn create_domain(&self, _: &str) -> Result<(), SdbError> {
            Ok(())
        }
        fn get_attributes(&self, _: &str, item: &str, _: bool) -> Result<Item, SdbError> {
            let items = self.items.lock().unwrap();
            Ok(Item {
                name: item.into(),
                attrs: items
                    .get(item)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })
        }
        fn put_attributes(
            &self,
            _: &str,
            item: &str,
            attrs: &[(String, String)],
            expected: Option<&Expected>,
        ) -> Result<(), SdbError> {
            let mut items = self.items.lock().unwrap();
            let cur = items.entry(item.into()).or_default();
            let ok = match expected {
                None => true,
                Some(Expected::Absent(n)) => !cur.contains_key(n),
                Some(Expected::Equals(n, v)) => cur.get(n) == Some(v),
            };
            if !ok {
                return Err(SdbError::Service {
                    action: "PutAttributes",
                    status: 409,
                    code: "ConditionalCheckFailed".into(),
                    message: String::new(),
                });
            }
            *self.puts.lock().unwrap() += 1;
            for (k, v) in attrs {
                cur.insert(k.clone(), v.clone());
            }
            Ok(())
        }
        fn delete_attributes(&self, _: &str, item: &str, names: &[String]) -> Result<(), SdbError> {
            if let Some(m) = self.items.lock().unwrap().get_mut(item) {
                for n in names {
                    m.remove(n);
                }
            }
            Ok(())
        }
        fn batch_delete(&self, _: &str, items: &[String]) -> Result<(), SdbError> {
            let mut all = self.items.lock().unwrap();
            for i in items {
                all.remove(i);
            }
            Ok(())
        }
        fn select(
            &self,
            _: &str,
            _: bool,
            _: Option<&str>,
        ) -> Result<super::super::sdb::SelectPage, SdbError> {
            Ok(super::super::sdb::SelectPage::default())
        }
    }

    #[test]
    fn racing_reservations_never_exceed_the_rate_together() {
        let db = MemDb::default();
        let t = at("2026-11-30T10:30:00Z");
        let now = move || t;
        let rate = 100 * MIB;
        let grants: Vec<Grant> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        reserve(&db, "d", Slots::default(), rate, &now, &|allowed| {
                            allowed.min(60 * MIB)
                        })
                        .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let granted: u64 = grants
            .iter()
            .map(|g| match g {
                Grant::Granted { len, .. } => *len,
                Grant::Wait { .. } => 0,
            })
            .sum();
        assert!(granted.div_ceil(4) <= rate, "{granted} bytes granted");
        assert_eq!(granted, 400 * MIB, "the rate is used up: {grants:?}");
        let items = db.items.lock().unwrap();
        let held: u64 = items[BANDWIDTH_ITEM][&Slots::attr(Slots::default().start(t))]
            .parse()
            .unwrap();
        assert_eq!(held, rate);
    }
}
