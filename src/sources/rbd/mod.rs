//! The `rbd` source: Ceph block images and snapshots, fetched with
//! `rbd export-diff` and applied to sparse image files (DESIGN §7).
//! `diff` parses the export-diff stream; `apply` patches an image file.

pub mod apply;
pub mod diff;
