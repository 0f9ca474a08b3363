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
    /// Run the op even when its result is cached (`--no-cache`, `--no-cache-filter`).
    pub ignore_cache: bool,
    /// Labels such as `llb.customname`, shown in progress output.
    pub description: BTreeMap<String, String>,
    /// Whether a cache export includes the op's result; `None` leaves it to the exporter.
    pub export_cache: Option<bool>,
    /// Progress shows the ops of one group as one step (`COPY --link`'s copy and merge).
    pub progress_group: Option<pb::ProgressGroup>,
    /// Where in its sources the op comes from (the Definition's source map).
    pub locations: Vec<SourceLocation>,
}

impl Constraints {
    /// The name progress output shows for the op.
    pub const CUSTOM_NAME: &'static str = "llb.customname";

    /// The constraints with `platform` set.
    pub fn with_platform(mut self, platform: pb::Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The constraints with the progress name ([`Self::CUSTOM_NAME`]) set to `name`.
    pub fn with_custom_name(mut self, name: impl Into<String>) -> Self {
        self.description
            .insert(Self::CUSTOM_NAME.to_owned(), name.into());
        self
    }

    /// The constraints with one more description label.
    pub fn with_description(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.description.insert(key.into(), value.into());
        self
    }

    /// The constraints with one more source location.
    pub fn with_location(mut self, location: SourceLocation) -> Self {
        self.locations.push(location);
        self
    }

    /// The constraints with `ignore_cache` set to `ignore`.
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
