//! Source maps: where in a source file (a Dockerfile) each op comes from, as BuildKit's
//! `llb.SourceMap` writes them into a Definition's `source` field. They live outside the
//! ops, so they change neither an op's digest nor a cache key; a solver that fails an op
//! points at the lines it came from.

use std::collections::BTreeMap;
use std::sync::Arc;

use bud_proto::pb;

/// One source file: its name, language and bytes, and the definition that loaded it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMap {
    /// The file's name as errors show it (`Dockerfile`, or the `-f` name).
    pub filename: String,
    /// `Dockerfile` for a Dockerfile, as BuildKit's frontend names it.
    pub language: String,
    /// The file's bytes, for the lines an error quotes.
    pub data: Vec<u8>,
    /// The LLB that reads the file (BuildKit's frontend: the `local://dockerfile` source).
    pub definition: Option<pb::Definition>,
}

impl SourceMap {
    /// A source map with no loading definition.
    pub fn new(filename: impl Into<String>, language: impl Into<String>, data: Vec<u8>) -> Self {
        SourceMap {
            filename: filename.into(),
            language: language.into(),
            data,
            definition: None,
        }
    }

    /// The source map with the LLB that loads the file.
    pub fn with_definition(mut self, definition: pb::Definition) -> Self {
        self.definition = Some(definition);
        self
    }

    /// `ranges` of this source, for [`Constraints::with_location`](super::Constraints).
    pub fn location(self: &Arc<Self>, ranges: Vec<pb::Range>) -> SourceLocation {
        SourceLocation {
            map: self.clone(),
            ranges,
        }
    }

    fn info(&self) -> pb::SourceInfo {
        pb::SourceInfo {
            filename: self.filename.clone(),
            data: self.data.clone(),
            definition: self.definition.clone(),
            language: self.language.clone(),
        }
    }
}

/// Lines `start..=end` (1-based) as a range: whole lines, as BuildKit's Dockerfile
/// frontend gives an instruction's location (character 0 at both ends).
pub fn line_range(start: usize, end: usize) -> pb::Range {
    let position = |line: usize| pb::Position {
        line: i32::try_from(line).unwrap_or(i32::MAX),
        character: 0,
    };
    pb::Range {
        start: Some(position(start)),
        end: Some(position(end.max(start))),
    }
}

/// Where in a source an op comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLocation {
    pub(crate) map: Arc<SourceMap>,
    pub(crate) ranges: Vec<pb::Range>,
}

/// Gathers the locations of the ops a marshal writes, and the sources they point into,
/// each source once.
#[derive(Default)]
pub(crate) struct SourceCollector {
    maps: Vec<Arc<SourceMap>>,
    locations: BTreeMap<String, Vec<pb::Location>>,
}

impl SourceCollector {
    /// Every op built adds its locations, an op built twice (equal bytes) both sets, as
    /// BuildKit's collector does.
    pub(crate) fn add(&mut self, digest: &str, locations: &[SourceLocation]) {
        for location in locations {
            let index = self.index_of(&location.map);
            self.locations
                .entry(digest.to_owned())
                .or_default()
                .push(pb::Location {
                    source_index: index,
                    ranges: location.ranges.clone(),
                });
        }
    }

    fn index_of(&mut self, map: &Arc<SourceMap>) -> i32 {
        let found = self
            .maps
            .iter()
            .position(|m| Arc::ptr_eq(m, map) || **m == **map);
        let index = found.unwrap_or_else(|| {
            self.maps.push(map.clone());
            self.maps.len() - 1
        });
        i32::try_from(index).unwrap_or(i32::MAX)
    }

    /// The Definition's `source`: BuildKit always sets it, empty when no op has a location.
    pub(crate) fn into_source(self) -> pb::Source {
        pb::Source {
            locations: self
                .locations
                .into_iter()
                .map(|(digest, locations)| (digest, pb::Locations { locations }))
                .collect(),
            infos: self.maps.iter().map(|m| m.info()).collect(),
        }
    }
}

/// The locations `source` gives the op `digest`, each with the source it points into.
pub fn locations_of<'a>(
    source: &'a pb::Source,
    digest: &str,
) -> impl Iterator<Item = (&'a pb::SourceInfo, &'a [pb::Range])> + 'a {
    source
        .locations
        .get(digest)
        .into_iter()
        .flat_map(|l| &l.locations)
        .filter_map(|l| {
            let info = usize::try_from(l.source_index)
                .ok()
                .and_then(|i| source.infos.get(i))?;
            Some((info, l.ranges.as_slice()))
        })
}
