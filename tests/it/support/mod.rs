//! Fixtures shared by the integration tests: the test environment and
//! prerequisites (`env`), a real sshd on 127.0.0.1 (`sshd`), a throwaway
//! system user (`system_user`), a fake Coda server's tools installed for
//! that sshd to run (`coda`), the hostile
//! source tree (`tree_builder`) and the attribute-by-attribute tree
//! comparison (`treecmp`), a throwaway Ceph cluster (`ceph`) and a CephFS
//! added to it (`cephfs`), the fake
//! Glacier + `SimpleDB` server (`fake_aws`), the fake GitHub (`github`) and
//! Deltaic's recorded github output with its oracle (`deltaic_github`).
//!
//! Owns no strata logic: fixtures drive real programs (sshd, ssh-keygen,
//! setfacl) and real syscalls, and never mock them. Every fixture tears down
//! in `Drop`. A fixture whose prerequisite is missing goes through
//! [`env::require`]: a loud skip, or a failure under `STRATA_TEST_STRICT=1`.

// why: each test module uses a different subset of the fixtures; the unused
// rest must not warn (CI builds with -D warnings).
#![allow(dead_code)]

pub mod ceph;
pub mod cephfs;
pub mod coda;
pub mod deltaic_github;
pub mod env;
pub mod fake_aws;
pub mod github;
pub mod googledrive;
pub mod sshd;
pub mod system_user;
pub mod tree_builder;
pub mod treecmp;
