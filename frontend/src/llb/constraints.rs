use std::collections::BTreeMap;

use bud_proto::pb;

use super::sourcemap::SourceLocation;

/// Where an op may run and what the daemon should know about it without it
/// entering the op's digest (everything but the platform and worker filters is
/// `OpMetadata`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constraints {
    /// Platform of platform-specific ops (images, exec). File, merge and diff
    /// ops and non-image sources never carry one, as in BuildKit.
    pub platform: Option<pb::Platform>,
    /// containerd-style worker filters.
    pub worker_filters: Vec<String>,
    pub ignore_cache: bool,
    /// Labels such as `llb.customname`, shown in progress output.
    pub description: BTreeMap<String, String>,
    pub export_cache: Option<bool>,
    pub progress_group: Option<pb::ProgressGroup>,
    /// Where in its sources the op comes from (the Definition's source map).
    pub locations: Vec<SourceLocation>,
}

impl Constraints {
    /// The name progress output shows for the op.
    pub const CUSTOM_NAME: &'static str = "llb.customname";

    pub fn with_platform(mut self, platform: pb::Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    pub fn with_custom_name(mut self, name: impl Into<String>) -> Self {
        self.description
            .insert(Self::CUSTOM_NAME.to_owned(), name.into());
        self
    }

    pub fn with_description(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.description.insert(key.into(), value.into());
        self
    }

    pub fn with_location(mut self, location: SourceLocation) -> Self {
        self.locations.push(location);
        self
    }

    pub fn with_ignore_cache(mut self, ignore: bool) -> Self {
        self.ignore_cache = ignore;
        self
    }

    pub(crate) fn metadata(&self, caps: &[&str]) -> pb::OpMetadata {
        pb::OpMetadata {
            ignore_cache: self.ignore_cache,
            description: self.description.clone(),
            export_cache: self.export_cache.map(|value| pb::ExportCache { value }),
            caps: caps.iter().map(|c| ((*c).to_owned(), true)).collect(),
            progress_group: self.progress_group.clone(),
            linux_resources: None,
        }
    }

    /// Go's marshaler always sets the (usually empty) worker constraints, so
    /// they are part of every op's bytes; keeping them makes our digests equal
    /// to BuildKit's for the same op.
    pub(crate) fn worker_constraints(&self) -> pb::WorkerConstraints {
        pb::WorkerConstraints {
            filter: self.worker_filters.clone(),
        }
    }
}
