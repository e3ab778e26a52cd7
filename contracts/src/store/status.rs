//! What the status page shows, read from the newest snapshot and the audit log (issue #15).
