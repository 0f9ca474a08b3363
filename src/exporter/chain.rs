//! Layer chain IDs: how Docker's layer store names a layer together with everything below it.

use crate::content::Digest;

/// The chain ID of each prefix of `diff_ids`: the first is the first diff ID, then
/// `chain[i] = sha256(chain[i-1] + " " + diff_id[i])` (OCI image spec, "ChainID").
///
/// Docker keys its layer store by chain ID, so a daemon holding `chain[i]` holds layers
/// `0..=i` exactly as stacked here.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chain: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_of_known_layers() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let chain = chain_ids(&[a.clone(), b.clone(), a.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], Digest::of(format!("{a} {b}").as_bytes()));
        assert_eq!(chain[2], Digest::of(format!("{} {a}", chain[1]).as_bytes()));
        // The same diff at another height is another layer.
        assert_ne!(chain[2], chain[0]);
        assert!(chain_ids(&[]).is_empty());
    }
}
