//! The seccomp filter of a RUN step. BuildKit gives every step Docker's default profile; its
//! effect on a step with Docker's default capabilities is to refuse what those capabilities
//! do not already refuse: creating namespaces (a user namespace needs no capability), the
//! kernel keyring, BPF, perf events, userfaultfd, reading other processes' memory, and the
//! administrative calls. bud denies those and allows the rest, so that a system call newer
//! than the list never breaks a build. (The NUMA memory-policy calls, which older profiles
//! tie to CAP_SYS_NICE and newer ones allow, are allowed.) A `--security=insecure` step gets
//! no filter, as with BuildKit.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use super::Result;

const EPERM: u32 = 1;
/// `clone3` answers "not implemented", as in Docker's profile: its flags are in memory a
/// filter cannot read, and C libraries then fall back to `clone`, whose flags it can.
const ENOSYS: u32 = 38;

/// Refused outright (Docker's profile allows them only with capabilities a step lacks).
const DENIED: &[&str] = &[
    // Namespaces and mounts.
    "unshare",
    "setns",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    // The kernel keyring.
    "add_key",
    "keyctl",
    "request_key",
    // BPF, perf events, page-fault handling in user space.
    "bpf",
    "perf_event_open",
    "userfaultfd",
    // Other processes' memory and files.
    "kcmp",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "process_madvise",
    "name_to_handle_at",
    "open_by_handle_at",
    // Modules, kexec, the machine, the clock, accounting, quotas.
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "settimeofday",
    "stime",
    "clock_settime",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "vhangup",
    "sethostname",
    "setdomainname",
    "fanotify_init",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    // Obsolete interfaces.
    "nfsservctl",
    "_sysctl",
    "sysfs",
    "uselib",
    "ustat",
    "vm86",
    "vm86old",
];

/// The `clone` flags that create a namespace; a `clone` with any of them is refused.
const NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// The filter of an ordinary step.
pub(super) fn default_filter() -> Result<LinuxSeccomp> {
    let mut syscalls: Vec<LinuxSyscall> = vec![deny(DENIED, EPERM)?, deny(&["clone3"], ENOSYS)?];
    for flag in NAMESPACE_FLAGS {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(EPERM)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(clone_flags_index())
                        .value(flag)
                        .value_two(flag)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                        .build()?,
                ])
                .build()?,
        );
    }
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()?)
}

fn deny(names: &[&str], errno: u32) -> Result<LinuxSyscall> {
    Ok(LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno)
        .build()?)
}

/// The flags are `clone`'s first argument, except on s390, where they are its second.
fn clone_flags_index() -> usize {
    if cfg!(target_arch = "s390x") { 1 } else { 0 }
}

/// The host's architecture and those its kernel also runs: a 32-bit call on a 64-bit
/// kernel must meet the same filter.
fn architectures() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        _ => vec![Arch::ScmpArchNative],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denies_namespaces_and_the_keyring_and_allows_by_default() {
        let filter = default_filter().unwrap();
        assert_eq!(filter.default_action(), LinuxSeccompAction::ScmpActAllow);
        let syscalls = filter.syscalls().as_ref().unwrap();
        let denied: Vec<&String> = syscalls
            .iter()
            .filter(|s| s.args().is_none())
            .flat_map(|s| s.names())
            .collect();
        for name in ["unshare", "setns", "keyctl", "bpf", "clone3"] {
            assert!(denied.iter().any(|d| *d == name), "{name} not denied");
        }
        assert!(!denied.iter().any(|d| *d == "clone" || *d == "ptrace"));
        let clone_rules = syscalls
            .iter()
            .filter(|s| s.names() == &["clone".to_string()])
            .count();
        assert_eq!(clone_rules, NAMESPACE_FLAGS.len());
    }
}
