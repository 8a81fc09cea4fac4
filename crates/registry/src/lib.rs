//! The OCI distribution protocol client (not implemented yet: see the registry issue).
