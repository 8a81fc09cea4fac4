//! Root filesystems from image layers (not implemented yet: see the rootfs issue).
