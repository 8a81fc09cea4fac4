//! A process in a container from an OCI runtime spec (not implemented yet: see the sandbox issue).
