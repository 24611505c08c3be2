//! Placeholder on branch issue3-snapshots: the shared fixtures are being
//! written on main; take main's version of this file when merging. The
//! snapshot tests use their own small `snap_env` module.
