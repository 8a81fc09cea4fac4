//! Device access rules (`linux.resources.devices`) for cgroup v2: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's cgroup, generated from the same rule list that cgroup v1
//! gets through `devices.allow`/`devices.deny`.
//!
//! Semantics (as the v1 controller and runc): everything is denied, then each rule in order allows or denies what it
//! matches; a later rule overrides an earlier one. The program checks the rules from last to first and answers with
//! the first match.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use crate::error::{Error, Result};

/// One device rule: type (`a`, `b`, `c`), major and minor (`None`: any), access bits (mknod 1, read 2, write 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub typ: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: u32,
}

fn access_bits(s: &str) -> u32 {
    s.chars().fold(0, |m, c| {
        m | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

impl Rule {
    pub(crate) fn from_spec(d: &LinuxDeviceCgroup) -> Rule {
        Rule {
            allow: d.allow(),
            typ: d.typ().map_or('a', |t| t.as_str().chars().next().unwrap_or('a')),
            major: d.major(),
            minor: d.minor(),
            access: access_bits(d.access().as_deref().unwrap_or("rwm")),
        }
    }

    /// Parse a v1-style rule (`c 1:3 rwm`, `c *:* m`).
    pub(crate) fn parse_allow(s: &str) -> Option<Rule> {
        let mut parts = s.split(' ');
        let typ = parts.next()?.chars().next()?;
        let (maj, min) = parts.next()?.split_once(':')?;
        let num = |v: &str| if v == "*" { Some(None) } else { v.parse().ok().map(Some) };
        Some(Rule {
            allow: true,
            typ,
            major: num(maj)?,
            minor: num(min)?,
            access: access_bits(parts.next()?),
        })
    }
}

// eBPF encoding.
const LDX_MEM_W: u8 = 0x61;
const ALU_MOV_X: u8 = 0xbc;
const ALU_AND_K: u8 = 0x54;
const ALU_RSH_K: u8 = 0x74;
const JMP_JNE_K: u8 = 0x55;
const ALU64_MOV_K: u8 = 0xb7;
const JMP_EXIT: u8 = 0x95;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// Build the program. Registers: r2 = device type, r3 = requested access, r4 = major, r5 = minor.
pub(crate) fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0), // r2 = ctx->access_type
        insn(ALU_MOV_X, 3, 2, 0, 0), // r3 = r2
        insn(ALU_AND_K, 2, 0, 0, 0xffff),
        insn(ALU_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0), // r4 = ctx->major
        insn(LDX_MEM_W, 5, 1, 8, 0), // r5 = ctx->minor
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<Insn> = Vec::new();
        // Each check jumps to the end of this block ("next rule") when it does not match; offsets patched below.
        match r.typ {
            'b' => block.push(insn(JMP_JNE_K, 2, 0, 0, 1)),
            'c' => block.push(insn(JMP_JNE_K, 2, 0, 0, 2)),
            _ => {}
        }
        if r.access & 7 != 7 {
            // Requested bits must all be in the rule: (r3 & ~access) == 0.
            block.push(insn(ALU_MOV_X, 6, 3, 0, 0));
            block.push(insn(ALU_AND_K, 6, 0, 0, !(r.access as i32) & 7));
            block.push(insn(JMP_JNE_K, 6, 0, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(insn(JMP_JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(insn(JMP_JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        let mut conditional = false;
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K {
                ins.off = (len - i - 1) as i16;
                conditional = true;
            }
        }
        p.extend(block);
        if !conditional {
            // Matches everything: nothing after it is reachable (the verifier refuses unreachable code).
            return p;
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> libc::c_long {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) }
}

/// Load the program for `rules` and attach it to the cgroup v2 directory `dir` (replacing one attached before).
///
/// # Errors
/// [`Error::Cgroup`] when the kernel refuses to load or attach it (its verifier log is in the message).
pub(crate) fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = program(rules);
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 16 * 1024];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes()); // log_level
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    let fd = bpf(BPF_PROG_LOAD, &mut attr);
    if fd < 0 {
        let source = std::io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]).into_owned();
        return Err(Error::Cgroup {
            path: dir.to_owned(),
            what: "load device filter",
            source: std::io::Error::new(source.kind(), format!("{source}: {verifier}")),
        });
    }
    // SAFETY: a new fd owned by us.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|source| Error::Cgroup {
        path: dir.to_owned(),
        what: "open cgroup",
        source,
    })?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cg.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    if bpf(BPF_PROG_ATTACH, &mut attr) < 0 {
        return Err(Error::Cgroup {
            path: dir.to_owned(),
            what: "attach device filter",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_v1_rules() {
        assert_eq!(
            Rule::parse_allow("c 136:* rwm"),
            Some(Rule {
                allow: true,
                typ: 'c',
                major: Some(136),
                minor: None,
                access: 7
            })
        );
        assert_eq!(
            Rule::parse_allow("b *:* m"),
            Some(Rule {
                allow: true,
                typ: 'b',
                major: None,
                minor: None,
                access: 1
            })
        );
    }

    #[test]
    fn jumps_land_on_the_next_rule() {
        let rules = [
            Rule {
                allow: false,
                typ: 'a',
                major: None,
                minor: None,
                access: 7,
            },
            Rule {
                allow: true,
                typ: 'c',
                major: Some(1),
                minor: Some(3),
                access: 6,
            },
        ];
        let p = program(&rules);
        // Prologue 6; the c 1:3 rw rule: type, access (3), major, minor, mov, exit = 8; deny-all: mov, exit, and
        // nothing after it.
        assert_eq!(p.len(), 6 + 8 + 2);
        let block = &p[6..14];
        for (i, ins) in block.iter().enumerate() {
            if ins.code == JMP_JNE_K {
                assert_eq!(i as i16 + 1 + ins.off, 8, "jump at {i} must land after the block");
            }
        }
    }
}
