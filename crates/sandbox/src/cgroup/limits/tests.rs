//! The translation for v1 and v2, without root.
#![allow(clippy::unwrap_used)]

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory, LinuxPids,
};

use super::*;

const MIB: i64 = 1 << 20;

fn memory(limit: Option<i64>, swap: Option<i64>) -> LinuxResources {
    let mut m = LinuxMemory::default();
    m.set_limit(limit);
    m.set_swap(swap);
    let mut r = LinuxResources::default();
    r.set_memory(Some(m));
    r
}

fn v1(memory_limit: i64, memsw_limit: Option<u64>) -> Facts {
    Facts {
        memory_limit: Some(memory_limit as u64),
        memsw_limit,
        ..Facts::default()
    }
}

/// The writes as `file=value`, in order.
fn writes(r: &LinuxResources, version: CgroupVersion, facts: &Facts) -> Vec<String> {
    translate(r, version, facts, DeviceRules::IfListed)
        .unwrap()
        .writes
        .iter()
        .map(|w| format!("{}={}", w.file, w.value))
        .collect()
}

#[test]
fn v1_memory_raise_alone_lifts_swap_first_keeping_the_allowance() {
    // 100 MiB of memory and 50 MiB of swap; raising memory to 200 MiB keeps 50 MiB of swap.
    let facts = v1(100 * MIB, Some(150 * MIB as u64));
    assert_eq!(
        writes(&memory(Some(200 * MIB), None), CgroupVersion::V1, &facts),
        [
            format!("memory.memsw.limit_in_bytes={}", 250 * MIB),
            format!("memory.limit_in_bytes={}", 200 * MIB)
        ]
    );
    // No swap allowed (memsw == limit): still none after the raise.
    let facts = v1(100 * MIB, Some(100 * MIB as u64));
    assert_eq!(
        writes(&memory(Some(200 * MIB), None), CgroupVersion::V1, &facts),
        [
            format!("memory.memsw.limit_in_bytes={}", 200 * MIB),
            format!("memory.limit_in_bytes={}", 200 * MIB)
        ]
    );
}

#[test]
fn v1_memory_alone_leaves_swap_alone_when_it_fits() {
    // Swap unlimited (the kernel's default), not accounted, or a lowering: the memory limit only.
    for facts in [
        v1(100 * MIB, Some(i64::MAX as u64 & !4095)),
        v1(100 * MIB, None),
        v1(100 * MIB, Some(300 * MIB as u64)),
    ] {
        assert_eq!(
            writes(&memory(Some(64 * MIB), None), CgroupVersion::V1, &facts),
            [format!("memory.limit_in_bytes={}", 64 * MIB)],
            "{facts:?}"
        );
    }
}

#[test]
fn v1_memory_and_swap_are_ordered_as_runc_orders_them() {
    // Raising both: swap first (the new swap limit is above the current memory limit).
    assert_eq!(
        writes(
            &memory(Some(200 * MIB), Some(400 * MIB)),
            CgroupVersion::V1,
            &v1(100 * MIB, Some(200 * MIB as u64))
        ),
        [
            format!("memory.memsw.limit_in_bytes={}", 400 * MIB),
            format!("memory.limit_in_bytes={}", 200 * MIB)
        ]
    );
    // Lowering both: memory first.
    assert_eq!(
        writes(
            &memory(Some(32 * MIB), Some(48 * MIB)),
            CgroupVersion::V1,
            &v1(100 * MIB, Some(200 * MIB as u64))
        ),
        [
            format!("memory.limit_in_bytes={}", 32 * MIB),
            format!("memory.memsw.limit_in_bytes={}", 48 * MIB)
        ]
    );
    // Unlimited memory makes swap unlimited too, swap first.
    assert_eq!(
        writes(
            &memory(Some(-1), None),
            CgroupVersion::V1,
            &v1(100 * MIB, Some(200 * MIB as u64))
        ),
        ["memory.memsw.limit_in_bytes=-1", "memory.limit_in_bytes=-1"]
    );
    // 0 means "not set", as in runc.
    assert_eq!(
        writes(&memory(Some(0), Some(0)), CgroupVersion::V1, &v1(100 * MIB, None)),
        Vec::<String>::new()
    );
}

#[test]
fn v2_memory_swap_is_swap_alone_and_cpu_max_keeps_the_other_half() {
    assert_eq!(
        writes(
            &memory(Some(64 * MIB), Some(96 * MIB)),
            CgroupVersion::V2,
            &Facts::default()
        ),
        [
            format!("memory.max={}", 64 * MIB),
            format!("memory.swap.max={}", 32 * MIB)
        ]
    );
    assert_eq!(
        writes(&memory(Some(-1), Some(-1)), CgroupVersion::V2, &Facts::default()),
        ["memory.max=max", "memory.swap.max=max"]
    );
    let mut cpu = LinuxCpu::default();
    cpu.set_quota(Some(25_000));
    let mut r = LinuxResources::default();
    r.set_cpu(Some(cpu));
    let facts = Facts {
        cpu_max: Some(("50000".into(), 200_000)),
        ..Facts::default()
    };
    assert_eq!(writes(&r, CgroupVersion::V2, &facts), ["cpu.max=25000 200000"]);
    let mut cpu = LinuxCpu::default();
    cpu.set_period(Some(50_000));
    cpu.set_shares(Some(1024));
    r.set_cpu(Some(cpu));
    assert_eq!(
        writes(&r, CgroupVersion::V2, &facts),
        ["cpu.weight=39", "cpu.max=50000 50000"]
    );
    // On v1 quota and period are separate files: only the one given is written.
    assert_eq!(
        writes(&r, CgroupVersion::V1, &Facts::default()),
        ["cpu.shares=1024", "cpu.cfs_period_us=50000"]
    );
}

#[test]
fn only_the_fields_given_are_written() {
    let mut p = LinuxPids::default();
    p.set_limit(-1);
    let mut r = LinuxResources::default();
    r.set_pids(Some(p));
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        assert_eq!(writes(&r, version, &Facts::default()), ["pids.max=max"]);
    }
    assert_eq!(
        writes(&LinuxResources::default(), CgroupVersion::V1, &Facts::default()),
        Vec::<String>::new()
    );
}

#[test]
fn update_refuses_what_create_refuses() {
    let mut cpu = LinuxCpu::default();
    cpu.set_idle(Some(1));
    let mut r = LinuxResources::default();
    r.set_cpu(Some(cpu));
    for devices in [DeviceRules::Always, DeviceRules::IfListed] {
        let e = translate(&r, CgroupVersion::V1, &Facts::default(), devices).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidSpec { field, .. } if field == "linux.resources.cpu.idle"),
            "{e:?}"
        );
    }
    let mut m = LinuxMemory::default();
    m.set_kernel(Some(1 << 20));
    let mut r = LinuxResources::default();
    r.set_memory(Some(m));
    let e = translate(&r, CgroupVersion::V2, &Facts::default(), DeviceRules::IfListed).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidSpec { field, .. } if field == "linux.resources.memory.kernel"),
        "{e:?}"
    );
    let mut r = LinuxResources::default();
    r.set_unified(Some([("memory.high".to_owned(), "1M".to_owned())].into()));
    assert!(translate(&r, CgroupVersion::V1, &Facts::default(), DeviceRules::IfListed).is_err());
    assert_eq!(writes(&r, CgroupVersion::V2, &Facts::default()), ["memory.high=1M"]);
}

#[test]
fn device_rules_deny_all_then_the_spec_then_the_defaults() {
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(10)
        .access("rw")
        .build()
        .unwrap();
    let mut r = LinuxResources::default();
    r.set_devices(Some(vec![rule]));
    let facts = Facts {
        devices_v1: true,
        ..Facts::default()
    };
    let v1 = writes(&r, CgroupVersion::V1, &facts);
    assert_eq!(v1[..2], ["devices.deny=a", "devices.allow=c 10:* rw"]);
    assert_eq!(v1.len(), 2 + DEFAULT_ALLOWED_DEVICES.len());
    let v2 = translate(&r, CgroupVersion::V2, &facts, DeviceRules::IfListed).unwrap();
    let program = v2.device_program.unwrap();
    assert!(!program[0].allow && program[0].typ == 'a');
    assert_eq!(program[1].major, Some(10));
    assert!(v2.writes.is_empty());
    // An update without rules leaves the device filter alone; a create always sets it.
    let none = LinuxResources::default();
    assert_eq!(
        translate(&none, CgroupVersion::V1, &facts, DeviceRules::IfListed).unwrap(),
        Limits::default()
    );
    let created = translate(&none, CgroupVersion::V1, &facts, DeviceRules::Always).unwrap();
    assert_eq!(created.writes.len(), 1 + DEFAULT_ALLOWED_DEVICES.len());
    // An unprivileged caller's v2 cgroup (a delegated subtree) gets no device program, as runc's rootless
    // containers do; rules it lists are refused, not dropped.
    let rootless = Facts {
        devices_v2: false,
        ..Facts::default()
    };
    let created = translate(&none, CgroupVersion::V2, &rootless, DeviceRules::Always).unwrap();
    assert_eq!(created.device_program, None);
    let e = translate(&r, CgroupVersion::V2, &rootless, DeviceRules::IfListed).unwrap_err();
    assert!(
        matches!(&e, Error::CgroupUnavailable { controller, .. } if controller == "devices"),
        "{e:?}"
    );
}

#[test]
fn io_weight_goes_to_the_file_the_scheduler_offers() {
    let mut b = LinuxBlockIo::default();
    b.set_weight(Some(500));
    let mut r = LinuxResources::default();
    r.set_block_io(Some(b));
    let with = |f| Facts {
        io_weight_file: Some(f),
        ..Facts::default()
    };
    assert_eq!(
        writes(&r, CgroupVersion::V1, &with("blkio.bfq.weight")),
        ["blkio.bfq.weight=500"]
    );
    assert_eq!(
        writes(&r, CgroupVersion::V2, &with("io.bfq.weight")),
        ["io.bfq.weight=500"]
    );
    assert_eq!(writes(&r, CgroupVersion::V2, &with("io.weight")), ["io.weight=4950"]);
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        let e = translate(&r, version, &Facts::default(), DeviceRules::IfListed).unwrap_err();
        assert!(matches!(e, Error::CgroupUnavailable { .. }), "{e:?}");
    }
}

#[test]
fn hugepage_limits_are_checked_before_any_write() {
    let mut r = LinuxResources::default();
    let limit = |size: &str, limit| {
        let mut l = LinuxHugepageLimit::default();
        l.set_page_size(size.into());
        l.set_limit(limit);
        l
    };
    r.set_hugepage_limits(Some(vec![limit("2MB", -1)]));
    let facts = Facts {
        page_sizes: Ok(vec!["2MB".into(), "1GB".into()]),
        hugetlb_rsvd: true,
        ..Facts::default()
    };
    assert_eq!(
        writes(&r, CgroupVersion::V1, &facts),
        ["hugetlb.2MB.limit_in_bytes=-1", "hugetlb.2MB.rsvd.limit_in_bytes=-1"]
    );
    assert_eq!(
        writes(&r, CgroupVersion::V2, &facts),
        ["hugetlb.2MB.max=max", "hugetlb.2MB.rsvd.max=max"]
    );
    let no_hugetlb = Facts {
        hugetlb: Err("no hierarchy".into()),
        ..facts.clone()
    };
    let e = translate(&r, CgroupVersion::V1, &no_hugetlb, DeviceRules::IfListed).unwrap_err();
    assert!(
        matches!(&e, Error::CgroupUnavailable { controller, .. } if controller == "hugetlb"),
        "{e:?}"
    );
    r.set_hugepage_limits(Some(vec![limit("2MB", 0), limit("3MB", 0)]));
    let e = translate(&r, CgroupVersion::V2, &facts, DeviceRules::IfListed).unwrap_err();
    assert!(
        matches!(&e, Error::CgroupUnavailable { reason, .. } if reason.contains("3MB")),
        "{e:?}"
    );
    r.set_hugepage_limits(Some(vec![limit("../memory", 0)]));
    let e = translate(&r, CgroupVersion::V2, &facts, DeviceRules::IfListed).unwrap_err();
    assert!(matches!(e, Error::InvalidSpec { .. }), "{e:?}");
}

#[test]
fn first_limit_names_what_a_container_without_a_cgroup_cannot_honour() {
    // Nothing set, an empty memory section, and device rules alone: no limit.
    assert_eq!(first_limit(&LinuxResources::default()), None);
    let mut r = LinuxResources::default();
    r.set_memory(Some(LinuxMemory::default()));
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    r.set_devices(Some(vec![rule]));
    assert_eq!(first_limit(&r), None);
    assert_eq!(first_limit(&memory(Some(64 * MIB), None)), Some("memory"));
    let mut r = LinuxResources::default();
    let mut pids = LinuxPids::default();
    pids.set_limit(10);
    r.set_pids(Some(pids));
    assert_eq!(first_limit(&r), Some("pids"));
    let mut r = LinuxResources::default();
    let mut cpu = LinuxCpu::default();
    cpu.set_cpus(Some("0".into()));
    r.set_cpu(Some(cpu));
    assert_eq!(first_limit(&r), Some("cpu"));
}
