//! The aws archiver against the fake Glacier + `SimpleDB`
//! (`tests/support/aws/fake_aws.py`): Deltaic's catalogue read and written
//! as Deltaic does, uploads in parts, retrieval jobs against the shared
//! budget, faults, and the migration to S3.
