//! Where a build's inputs come from: the local context (`context`), base images (`image`),
//! URLs (`http`), git repositories (`git`) and OCI layout directories (`oci_layout`).
//!
//! These are fetchers: each writes into a directory, stream or store it is given and
//! returns its own error type. Snapshots, cache keys' lookups and the mapping onto the
//! solver's errors belong to the solver (`solver::source`, `solver::remote_source`), which
//! depends on this module and never the other way round.

pub mod context;
pub mod git;
pub mod http;
pub mod image;
pub mod oci_layout;

#[cfg(test)]
mod tests {
    /// The solver uses the fetchers, never the reverse: no file here names it.
    #[test]
    fn fetchers_do_not_depend_on_the_solver() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/source");
        // Spelt in two parts so that this test does not find itself.
        let needle = format!("crate::{}", "solver");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                assert!(
                    !code.contains(&needle),
                    "{}:{}: {line}",
                    path.display(),
                    n + 1
                );
            }
            checked += 1;
        }
        assert!(checked >= 6, "only {checked} files in {}", dir.display());
    }
}
