//! The `rgw` source: RADOS Gateway buckets backed up through the S3 API.

pub mod keymap;
