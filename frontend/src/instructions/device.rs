//! `RUN --device=name[,required[=bool]]`, read as BuildKit's labs frontend reads it
//! (`instructions.ParseDevice`).

/// A CDI device a step asks for: `vendor.com/class=name`, `vendor.com/class=*`,
/// `vendor.com/class` (its first device) or a class annotation's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The device's name as written, resolved against the CDI specs when the step runs.
    pub name: String,
    /// A required device that is not registered fails the step; an optional one is skipped.
    pub required: bool,
}

/// The keys a `--device` value may have besides the bare name.
pub const DEVICE_KEYS: &[&str] = &["name", "required"];

/// Reads one `--device` value; the error says which part is malformed.
pub fn parse_device(raw: &str) -> Result<Device, String> {
    let fields =
        super::mount::csv_fields(raw).map_err(|e| e.replace("csv mounts", "csv devices"))?;
    let mut name = String::new();
    let mut required = false;
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            match field.to_lowercase().as_str() {
                "required" => required = true,
                _ if name.is_empty() => name = field,
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        match key.to_lowercase().as_str() {
            "name" if !name.is_empty() => {
                return Err(format!("device name already set to {name}"));
            }
            "name" => name = value.to_owned(),
            "required" => {
                required = crate::gobool::parse_go_bool(value)
                    .ok_or_else(|| format!("invalid value for required: {value}"))?;
            }
            // A CDI name has its own `=`: the first such field is the name.
            _ if name.is_empty() => name = field,
            key => {
                return Err(format!(
                    "unexpected key '{key}' in '{field}' (keys: {})",
                    DEVICE_KEYS.join(", ")
                ));
            }
        }
    }
    if name.is_empty() {
        return Err(format!("device name is missing in {raw:?}"));
    }
    Ok(Device { name, required })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, required: bool) -> Device {
        Device {
            name: name.to_owned(),
            required,
        }
    }

    #[test]
    fn device_values_as_buildkit_parses_them() {
        for (raw, want) in [
            (
                "vendor1.com/device=foo",
                device("vendor1.com/device=foo", false),
            ),
            ("vendor1.com/device", device("vendor1.com/device", false)),
            (
                "vendor1.com/device=foo,required",
                device("vendor1.com/device=foo", true),
            ),
            (
                "vendor1.com/device=foo,required=true",
                device("vendor1.com/device=foo", true),
            ),
            (
                "vendor1.com/device=foo,required=false",
                device("vendor1.com/device=foo", false),
            ),
            (
                "name=vendor1.com/device=foo",
                device("vendor1.com/device=foo", false),
            ),
            (
                "name=vendor1.com/device=foo,required",
                device("vendor1.com/device=foo", true),
            ),
            (
                "vendor1.com/device=*",
                device("vendor1.com/device=*", false),
            ),
        ] {
            assert_eq!(parse_device(raw).as_ref(), Ok(&want), "{raw}");
        }
    }

    #[test]
    fn bad_device_values_are_refused() {
        for (raw, want) in [
            (
                "vendor1.com/device=foo,name=vendor2.com/device=bar",
                "device name already set to vendor1.com/device=foo",
            ),
            (
                "vendor1.com/device=foo,required=maybe",
                "invalid value for required: maybe",
            ),
            (
                "vendor1.com/device=foo,bar",
                "invalid field 'bar' must be a key=value pair",
            ),
            ("a.com/b=c,size=2", "unexpected key 'size' in 'size=2'"),
            ("required", "device name is missing"),
        ] {
            let err = parse_device(raw).unwrap_err();
            assert!(err.contains(want), "{raw}: {err}");
        }
    }
}
