//! The child's namespaces (joined and new) and its credentials: bounding set, user and groups, capabilities.
//! Generic over [`Sys`]: unit tests check the calls a spec produces with the recording double.

use super::{fail_with, ok};
use crate::plan::Plan;
use crate::report::Stage;
use crate::sys::Sys;

/// Join the namespaces given by fd, in order; become root in a user namespace the clone made; make the new ones.
pub(super) fn enter<S: Sys>(sys: &S, plan: &Plan) {
    for (i, (fd, typ)) in plan.join.iter().enumerate() {
        ok(sys, plan, sys.setns(*fd, *typ), Stage::Setns, i);
        sys.close(*fd);
    }
    if plan.fork_w >= 0 {
        let pid = sys.fork_into_parent();
        if pid < 0 {
            fail_with(sys, plan, Stage::Setns, plan.join.len(), sys.errno());
        }
        if pid > 0 {
            // The go-between: hand the new process's pid over, and end (the caller reaps us).
            let n = sys.write(plan.fork_w, &pid.to_ne_bytes());
            sys.exit(if n == 4 { 0 } else { 1 });
        }
        sys.close(plan.fork_w);
    }
    if plan.new_userns {
        ok(sys, plan, sys.setresgid(0), Stage::UserRoot, 0);
        ok(sys, plan, sys.setresuid(0), Stage::UserRoot, 1);
    }
    if plan.unshare != 0 {
        ok(sys, plan, sys.unshare(plan.unshare), Stage::Unshare, 0);
    }
}

/// Drop what the bounding set must not hold (a capability this kernel lacks is no error).
pub(super) fn drop_bounding<S: Sys>(sys: &S, plan: &Plan) {
    for cap in 0..=plan.last_cap.min(63) {
        if plan.caps.bounding & (1u64 << cap) == 0 && sys.drop_bounding(cap) < 0 && sys.errno() != libc::EINVAL {
            fail_with(sys, plan, Stage::CapBounding, cap as usize, sys.errno());
        }
    }
}

/// Become the process's user and groups, keeping capabilities across the switch, then set them: capset, then the
/// ambient set.
pub(super) fn switch_user<S: Sys>(sys: &S, plan: &Plan) {
    ok(sys, plan, sys.keep_caps(), Stage::User, 0);
    // EPERM for no groups: a user namespace with setgroups denied (rootless), where there is nothing to drop.
    if sys.setgroups(&plan.groups) < 0 && !(sys.errno() == libc::EPERM && plan.groups.is_empty()) {
        fail_with(sys, plan, Stage::User, 1, sys.errno());
    }
    ok(sys, plan, sys.setresgid(plan.gid), Stage::User, 2);
    ok(sys, plan, sys.setresuid(plan.uid), Stage::User, 3);
    ok(sys, plan, sys.capset(&plan.caps), Stage::Capset, 0);
    sys.clear_ambient();
    // The kernel raises an ambient capability only if it is permitted and inheritable; like runc, leave out the
    // others instead of failing (`runc spec`'s own bundle asks for such ones).
    let raisable = plan.caps.ambient & plan.caps.permitted & plan.caps.inheritable;
    for cap in 0..=plan.last_cap.min(63) {
        if raisable & (1u64 << cap) != 0 {
            ok(sys, plan, sys.raise_ambient(cap), Stage::Ambient, cap as usize);
        }
    }
}
