//! The OCI runtime spec of a step, close to what BuildKit generates (containerd's defaults
//! plus BuildKit's changes): Docker's default capabilities, masked and read-only /proc and /sys
//! paths, no /run tmpfs, read-only /etc/hosts and /etc/resolv.conf binds.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDevice, LinuxDeviceBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount as OciMount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::{ExecError, ExecSpec, MountKind, Network, Result, Rlimit};

/// BuildKit's hostname for build containers.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// BuildKit lifts the open-files limit to its daemon's (1048576 under systemd); a process
/// cannot raise its hard limit without CAP_SYS_RESOURCE, so bud caps it at its own.
const NOFILE_LIMIT: u64 = 1_048_576;

const DEFAULT_CAPABILITIES: [Capability; 14] = [
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

/// Every capability, by number (`CAP_CHOWN` is 0): a privileged step gets those bud holds
/// itself (its bounding set), as containerd gives a privileged container all of its own.
const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

fn own_capabilities() -> HashSet<Capability> {
    // A sandbox may have dropped some: runc cannot grant what bud does not hold.
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1 << bit) != 0)
        .map(|(_, cap)| cap)
        .collect()
}

/// The host's devices, as runc lists them for a privileged container: every character and
/// block device under /dev, except those of the container's own /dev/pts, /dev/shm and
/// /dev/mqueue.
fn host_devices(dir: &Path, out: &mut Vec<LinuxDevice>) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    const SKIPPED: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            if !SKIPPED.iter().any(|s| name == *s) {
                host_devices(&path, out)?;
            }
            continue;
        }
        let typ = if kind.is_char_device() {
            LinuxDeviceType::C
        } else if kind.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        if name == "console" {
            continue;
        }
        let rdev = meta.rdev();
        out.push(
            LinuxDeviceBuilder::default()
                .path(&path)
                .typ(typ)
                .major(rustix::fs::major(rdev) as i64)
                .minor(rustix::fs::minor(rdev) as i64)
                .file_mode(meta.mode() & 0o7777)
                .uid(meta.uid())
                .gid(meta.gid())
                .build()?,
        );
    }
    Ok(())
}

const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn strings(options: &[&str]) -> Vec<String> {
    options.iter().map(|s| (*s).to_owned()).collect()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<OciMount> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(strings(options))
        .build()?)
}

fn default_mounts(hosts: &Path, resolv_conf: &Path, privileged: bool) -> Result<Vec<OciMount>> {
    let sys_options: &[&str] = if privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let cgroup_options: &[&str] = if privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["ro", "nosuid", "noexec", "nodev"]
    };
    let ro_bind = |dest: &str, source: &Path| -> Result<OciMount> {
        Ok(MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(source)
            .options(strings(&["rbind", "ro"]))
            .build()?)
    };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount("/sys", "sysfs", "sysfs", sys_options)?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_options)?,
        ro_bind("/etc/resolv.conf", resolv_conf)?,
        ro_bind("/etc/hosts", hosts)?,
    ])
}

/// The default mounts as a user namespace allows them, as runc's `ToRootless` makes them:
/// sysfs and cgroupfs belong to namespaces bud's user namespace does not own (the host's
/// network, no cgroup namespace), so the host's /sys is bound instead, read-only unless the
/// step is privileged.
fn rootless_mounts(mounts: Vec<OciMount>, privileged: bool) -> Result<Vec<OciMount>> {
    let mut mounts: Vec<OciMount> = mounts
        .into_iter()
        .filter(|m| !m.destination().starts_with("/sys"))
        .collect();
    let mut options = vec!["rbind", "nosuid", "noexec", "nodev"];
    if !privileged {
        options.push("ro");
    }
    mounts.push(mount("/sys", "bind", "/sys", &options)?);
    Ok(mounts)
}

fn user_mount(m: &super::Mount) -> Result<OciMount> {
    if !m.dest.starts_with('/') {
        return Err(ExecError::InvalidSpec(format!(
            "mount target {:?} is not an absolute path",
            m.dest
        )));
    }
    let builder = MountBuilder::default().destination(&m.dest);
    let built = match &m.kind {
        MountKind::Bind { source, readonly } => {
            let mut options = strings(&["rbind"]);
            if *readonly {
                options.push("ro".to_owned());
            }
            builder.typ("bind").source(source).options(options).build()
        }
        MountKind::Tmpfs { size } => {
            let mut options = strings(&["nosuid"]);
            if let Some(size) = size {
                options.push(format!("size={size}"));
            }
            builder
                .typ("tmpfs")
                .source("tmpfs")
                .options(options)
                .build()
        }
    };
    Ok(built?)
}

/// A later mount on the same target replaces an earlier one (the user's mounts override the
/// defaults), keeping the first one's position.
fn dedup_mounts(mounts: Vec<OciMount>) -> Vec<OciMount> {
    let mut out: Vec<OciMount> = Vec::with_capacity(mounts.len());
    for m in mounts {
        match out.iter_mut().find(|o| o.destination() == m.destination()) {
            Some(existing) => *existing = m,
            None => out.push(m),
        }
    }
    out
}

fn nofile_limit() -> u64 {
    let current = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    current
        .maximum
        .map_or(NOFILE_LIMIT, |max| max.min(NOFILE_LIMIT))
}

fn posix_rlimit(limit: &Rlimit) -> Result<oci_spec::runtime::PosixRlimit> {
    let typ = match limit.name.as_str() {
        "core" => PosixRlimitType::RlimitCore,
        "cpu" => PosixRlimitType::RlimitCpu,
        "data" => PosixRlimitType::RlimitData,
        "fsize" => PosixRlimitType::RlimitFsize,
        "locks" => PosixRlimitType::RlimitLocks,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "nofile" => PosixRlimitType::RlimitNofile,
        "nproc" => PosixRlimitType::RlimitNproc,
        "rss" => PosixRlimitType::RlimitRss,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "stack" => PosixRlimitType::RlimitStack,
        other => {
            return Err(ExecError::InvalidSpec(format!("unknown ulimit {other:?}")));
        }
    };
    Ok(PosixRlimitBuilder::default()
        .typ(typ)
        .soft(limit.soft)
        .hard(limit.hard)
        .build()?)
}

/// Builds the runtime spec of `exec`, whose /etc/hosts and /etc/resolv.conf are bound from
/// the given host files.
pub(crate) fn oci_spec(exec: &ExecSpec, hosts: &Path, resolv_conf: &Path) -> Result<Spec> {
    if exec.args.is_empty() {
        return Err(ExecError::InvalidSpec("no command to run".to_owned()));
    }
    if !exec.cwd.starts_with('/') {
        return Err(ExecError::InvalidSpec(format!(
            "working directory {:?} is not an absolute path",
            exec.cwd
        )));
    }
    let caps: HashSet<Capability> = if exec.privileged {
        own_capabilities()
    } else {
        DEFAULT_CAPABILITIES.into_iter().collect()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()?;
    let rlimits = if exec.rlimits.is_empty() {
        let nofile = nofile_limit();
        vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(nofile)
                .soft(nofile)
                .build()?,
        ]
    } else {
        // As BuildKit: the requested limits replace the defaults.
        exec.rlimits
            .iter()
            .map(posix_rlimit)
            .collect::<Result<Vec<_>>>()?
    };
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(exec.uid)
                .gid(exec.gid)
                .additional_gids(supplementary_groups(exec.gid, &exec.additional_gids))
                .build()?,
        )
        .args(exec.args.clone())
        .env(exec.env.clone())
        .cwd(&exec.cwd)
        .capabilities(capabilities)
        .rlimits(rlimits)
        // BuildKit allows setuid binaries (sudo, ping) in RUN steps.
        .no_new_privileges(false)
        .build()?;

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if exec.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()?;

    let rootless = crate::privilege::is_rootless();
    let mut linux = LinuxBuilder::default().namespaces(namespaces);
    // Deny all devices, or for a privileged step allow them all; the runtime itself allows
    // its defaults (null, zero, tty, ...). A rootless step has no cgroup to hold the rule:
    // its devices are the ones the runtime bind-mounts from the host.
    if !rootless {
        linux = linux.resources(
            LinuxResourcesBuilder::default()
                .devices(vec![
                    LinuxDeviceCgroupBuilder::default()
                        .allow(exec.privileged)
                        .access("rwm")
                        .build()?,
                ])
                .build()?,
        );
    }
    linux = if exec.privileged {
        let mut devices = Vec::new();
        host_devices(Path::new("/dev"), &mut devices)?;
        linux
            .devices(devices)
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new())
    } else {
        linux
            .masked_paths(strings(&MASKED_PATHS))
            .readonly_paths(strings(&READONLY_PATHS))
            .seccomp(super::seccomp::default_filter()?)
    };
    let linux = linux.build()?;

    let mut mounts = default_mounts(hosts, resolv_conf, exec.privileged)?;
    if rootless {
        mounts = rootless_mounts(mounts, exec.privileged)?;
    }
    for m in &exec.mounts {
        mounts.push(user_mount(m)?);
    }

    let spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(&exec.rootfs)
                .readonly(exec.readonly_rootfs)
                .build()?,
        )
        .hostname(exec.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME))
        .process(process)
        .mounts(dedup_mounts(mounts))
        .linux(linux)
        .build()?;
    with_devices(spec, &exec.devices, rootless)
}

/// The spec with the CDI devices' container edits applied.
fn with_devices(
    spec: Spec,
    devices: &[(String, Vec<super::cdi::Edits>)],
    rootless: bool,
) -> Result<Spec> {
    if devices.is_empty() {
        return Ok(spec);
    }
    let invalid = |e: serde_json::Error| ExecError::InvalidSpec(format!("CDI edits: {e}"));
    let mut value = serde_json::to_value(&spec).map_err(invalid)?;
    super::cdi::apply(&mut value, devices, rootless)?;
    serde_json::from_value(value).map_err(invalid)
}

/// The supplementary groups of a step's process: the primary group first, then the rest, as
/// current BuildKit sets them (containerd's `ensureAdditionalGids`), so that `id` in a step
/// lists the primary group and a file owned by it is reachable through either.
fn supplementary_groups(gid: u32, additional: &[u32]) -> Vec<u32> {
    if additional.contains(&gid) {
        return additional.to_vec();
    }
    std::iter::once(gid)
        .chain(additional.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Mount;

    fn spec(exec: &ExecSpec) -> Spec {
        match oci_spec(exec, Path::new("/b/hosts"), Path::new("/b/resolv.conf")) {
            Ok(spec) => spec,
            Err(e) => panic!("spec: {e}"),
        }
    }

    fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
    }

    #[test]
    fn network_namespace_only_when_isolated() {
        let mut exec = ExecSpec::new("/root", vec!["true".into()]);
        assert!(!has_namespace(&spec(&exec), LinuxNamespaceType::Network));
        exec.network = Network::None;
        assert!(has_namespace(&spec(&exec), LinuxNamespaceType::Network));
        assert!(has_namespace(&spec(&exec), LinuxNamespaceType::Pid));
    }

    #[test]
    fn user_mount_overrides_default_target() {
        let mut exec = ExecSpec::new("/root", vec!["true".into()]);
        exec.mounts.push(Mount {
            dest: "/dev/shm".into(),
            kind: MountKind::Tmpfs { size: Some(1024) },
        });
        let spec = spec(&exec);
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        let shm: Vec<_> = mounts
            .iter()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(
            shm[0].options().as_deref(),
            Some(&["nosuid".to_owned(), "size=1024".to_owned()][..])
        );
        assert_eq!(spec.hostname().as_deref(), Some(DEFAULT_HOSTNAME));
    }

    #[test]
    fn relative_paths_are_rejected() {
        let mut exec = ExecSpec::new("/root", vec!["true".into()]);
        exec.cwd = "work".into();
        assert!(oci_spec(&exec, Path::new("/h"), Path::new("/r")).is_err());
        exec.cwd = "/".into();
        exec.mounts.push(Mount {
            dest: "data".into(),
            kind: MountKind::Tmpfs { size: None },
        });
        assert!(oci_spec(&exec, Path::new("/h"), Path::new("/r")).is_err());
        assert!(
            oci_spec(
                &ExecSpec::new("/root", vec![]),
                Path::new("/h"),
                Path::new("/r")
            )
            .is_err()
        );
    }

    #[test]
    fn requested_rlimits_replace_the_default() {
        let mut exec = ExecSpec::new("/r", vec!["true".into()]);
        let default = spec(&exec);
        let limits = default.process().as_ref().and_then(|p| p.rlimits().clone());
        let types: Vec<_> = limits.iter().flatten().map(|l| l.typ()).collect();
        assert_eq!(types, [PosixRlimitType::RlimitNofile]);

        exec.rlimits = vec![Rlimit {
            name: "nproc".into(),
            soft: 10,
            hard: 20,
        }];
        let limits = spec(&exec)
            .process()
            .as_ref()
            .and_then(|p| p.rlimits().clone())
            .unwrap_or_default();
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].typ(), PosixRlimitType::RlimitNproc);
        assert_eq!((limits[0].soft(), limits[0].hard()), (10, 20));

        exec.rlimits[0].name = "files".into();
        assert!(oci_spec(&exec, Path::new("/h"), Path::new("/r")).is_err());
    }
}
