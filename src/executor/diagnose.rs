//! What to do about a failure of the OCI runtime itself, recognised in the last lines it
//! printed: its own words name a cgroup file, not what the user can change.

/// The hint for a step whose output ends with a runtime error bud recognises.
pub fn runtime_failure_hint(output_tail: &[String]) -> Option<&'static str> {
    // The runtime's error is the last thing it prints, after anything the step wrote.
    let last = output_tail
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(2);
    last.into_iter()
        .any(|line| refused_device_rules(line))
        .then_some(DEVICE_RULES_REFUSED)
}

const DEVICE_RULES_REFUSED: &str = "the container bud runs in does not let it set a step's \
     device rules (a RUN --security=insecure step asks for every device): run that container \
     with --privileged, or give it the devices cgroup";

/// runc and crun cannot write the step's device cgroup (v1: `devices.allow`, "a *:* rwm"
/// for every device) or attach its device filter (v2: a `BPF_CGROUP_DEVICE` program).
fn refused_device_rules(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    let refused = line.contains("operation not permitted") || line.contains("permission denied");
    let devices = ["devices.allow", "devices.deny", "bpf_cgroup_device"]
        .iter()
        .any(|file| line.contains(file));
    refused && devices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn device_cgroup_refusals_get_the_hint() {
        for line in [
            // runc 1.1, cgroup v1, in a container without device rights.
            "runc run failed: unable to start container process: error during container init: \
             error setting cgroup config for procHooks process: failed to write \"a *:* rwm\": \
             write /sys/fs/cgroup/devices/docker/abc/bud-1-2/devices.allow: operation not permitted",
            // Older runc, through logrus.
            "time=\"2024-01-01T00:00:00Z\" level=error msg=\"container_linux.go:380: starting \
             container process caused: process_linux.go:545: container init caused: failed to \
             write \\\"a *:* rwm\\\": write /sys/fs/cgroup/devices/x/devices.allow: operation \
             not permitted\"",
            // cgroup v2.
            "runc run failed: unable to start container process: error during container init: \
             error setting cgroup config for procHooks process: failed to call BPF_PROG_ATTACH \
             (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI): operation not permitted",
            // crun.
            "crun: writing file `devices.allow`: Operation not permitted",
        ] {
            assert_eq!(
                runtime_failure_hint(&tail(&["building…", line, ""])),
                Some(DEVICE_RULES_REFUSED),
                "{line}"
            );
        }
        assert!(DEVICE_RULES_REFUSED.contains("--privileged"));
    }

    #[test]
    fn other_failures_get_none() {
        for lines in [
            &["exit 3"][..],
            &["cat: /sys/fs/cgroup/devices.allow: No such file or directory"],
            &["mkdir: /x: Permission denied"],
            &[],
        ] {
            assert_eq!(runtime_failure_hint(&tail(lines)), None, "{lines:?}");
        }
        // The step printed it long before failing for its own reasons.
        let earlier = tail(&[
            "write devices.allow: operation not permitted",
            "compiling",
            "error: exit 2",
        ]);
        assert_eq!(runtime_failure_hint(&earlier), None);
    }
}
