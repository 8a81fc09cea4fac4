//! Linux capabilities: names, numbers, and the sets a container process gets.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

/// The kernel's number for an OCI capability.
pub fn number(cap: Capability) -> u8 {
    use Capability as C;
    match cap {
        C::Chown => 0,
        C::DacOverride => 1,
        C::DacReadSearch => 2,
        C::Fowner => 3,
        C::Fsetid => 4,
        C::Kill => 5,
        C::Setgid => 6,
        C::Setuid => 7,
        C::Setpcap => 8,
        C::LinuxImmutable => 9,
        C::NetBindService => 10,
        C::NetBroadcast => 11,
        C::NetAdmin => 12,
        C::NetRaw => 13,
        C::IpcLock => 14,
        C::IpcOwner => 15,
        C::SysModule => 16,
        C::SysRawio => 17,
        C::SysChroot => 18,
        C::SysPtrace => 19,
        C::SysPacct => 20,
        C::SysAdmin => 21,
        C::SysBoot => 22,
        C::SysNice => 23,
        C::SysResource => 24,
        C::SysTime => 25,
        C::SysTtyConfig => 26,
        C::Mknod => 27,
        C::Lease => 28,
        C::AuditWrite => 29,
        C::AuditControl => 30,
        C::Setfcap => 31,
        C::MacOverride => 32,
        C::MacAdmin => 33,
        C::Syslog => 34,
        C::WakeAlarm => 35,
        C::BlockSuspend => 36,
        C::AuditRead => 37,
        C::Perfmon => 38,
        C::Bpf => 39,
        C::CheckpointRestore => 40,
    }
}

/// The 14 capabilities Docker gives a container by default (bitmask `0xa80425fb`).
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's default set as OCI `process.capabilities` (bounding, effective, permitted; no inheritable or ambient).
pub fn docker_default() -> LinuxCapabilities {
    let set: Capabilities = DOCKER_DEFAULT.iter().copied().collect();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    caps
}

/// A capability set as a bitmask (bit N = capability number N).
pub fn mask(set: Option<&Capabilities>) -> u64 {
    set.map_or(0, |s| s.iter().fold(0u64, |m, c| m | (1u64 << number(*c))))
}

/// The five sets of a process as bitmasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapMasks {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

impl CapMasks {
    /// The masks of an OCI capabilities object.
    pub fn from_spec(caps: &LinuxCapabilities) -> Self {
        CapMasks {
            bounding: mask(caps.bounding().as_ref()),
            effective: mask(caps.effective().as_ref()),
            permitted: mask(caps.permitted().as_ref()),
            inheritable: mask(caps.inheritable().as_ref()),
            ambient: mask(caps.ambient().as_ref()),
        }
    }
}

/// The highest capability number the running kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask_is_0xa80425fb() {
        let set: Capabilities = DOCKER_DEFAULT.iter().copied().collect();
        assert_eq!(mask(Some(&set)), 0xa80425fb);
    }

    #[test]
    fn numbers_match_serde_names_order() {
        assert_eq!(number(Capability::SysAdmin), 21);
        assert_eq!(number(Capability::CheckpointRestore), 40);
    }
}
