//! OCI platforms as BuildKit parses, normalises and prints them.

use std::fmt;

use bud_proto::pb;

/// An OS and CPU architecture, e.g. `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// GOARCH-style: `amd64`, `arm64`, `arm`, `386`, …
    pub architecture: String,
    /// `v7`, `v8`, … or empty.
    pub variant: String,
}

impl Platform {
    /// Builds a normalised platform.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Self {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Platform {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// The platform this process runs on.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "arm" => "arm",
            _ => "amd64",
        };
        Platform::new("linux", arch, "")
    }

    /// Parses `os/arch[/variant]` (or a bare arch, for Linux) like containerd's `platforms.Parse`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let invalid =
            || format!("\"{text}\": unknown operating system or architecture: invalid argument");
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid());
        }
        match parts.as_slice() {
            [one] => {
                let lower = one.to_ascii_lowercase();
                if is_known_os(&lower) {
                    Ok(Platform::new(&lower, &Platform::host().architecture, ""))
                } else if is_known_arch(&lower) {
                    Ok(Platform::new("linux", &lower, ""))
                } else {
                    Err(invalid())
                }
            }
            [os, arch] => Ok(Platform::new(os, &arch.to_ascii_lowercase(), "")),
            [os, arch, variant] => Ok(Platform::new(
                os,
                &arch.to_ascii_lowercase(),
                &variant.to_ascii_lowercase(),
            )),
            _ => Err(invalid()),
        }
    }

    /// The LLB form.
    pub(crate) fn to_pb(&self) -> pb::Platform {
        pb::Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            ..Default::default()
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "linux" | "windows" | "darwin" | "freebsd" | "netbsd" | "openbsd" | "solaris" | "illumos"
    )
}

fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "amd64"
            | "x86_64"
            | "x86-64"
            | "arm64"
            | "aarch64"
            | "arm"
            | "armhf"
            | "armel"
            | "386"
            | "i386"
            | "ppc64le"
            | "s390x"
            | "riscv64"
            | "mips64le"
            | "loong64"
    )
}

/// containerd's normalisation: aliases to GOARCH names, default variants.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "") => ("arm64", ""),
        ("aarch64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "") | ("arm", "7") => ("arm", "v7"),
        ("arm", "5") => ("arm", "v5"),
        ("arm", "6") => ("arm", "v6"),
        (a, v) => (a, v),
    };
    (a.to_owned(), v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("nonsense").is_err());
    }
}
