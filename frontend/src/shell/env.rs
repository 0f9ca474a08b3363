//! Where the lexer looks variables up.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

/// A set of variables the lexer can expand.
///
/// `None` means unset, which differs from set to the empty string for `${V-w}`, `${V+w}` and
/// `${V?msg}`. Names are compared exactly, as on Linux.
pub trait Env {
    /// The value of `name`, or `None` if it is not set.
    fn get(&self, name: &str) -> Option<String>;
}

/// An environment in which nothing is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}

/// An ordered list of definitions, as a Dockerfile accumulates them: the last definition of a
/// name wins.
impl<K: AsRef<str>, V: AsRef<str>> Env for [(K, V)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref().to_owned())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Env for [(K, V); N] {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

impl<K: Borrow<str> + Hash + Eq, V: AsRef<str>, S: BuildHasher> Env for HashMap<K, V, S> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| v.as_ref().to_owned())
    }
}

impl<K: Borrow<str> + Ord, V: AsRef<str>> Env for BTreeMap<K, V> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).map(|v| v.as_ref().to_owned())
    }
}

impl<T: Env + ?Sized> Env for &T {
    fn get(&self, name: &str) -> Option<String> {
        (**self).get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lookups_take_the_last_definition() {
        let env = [("car", "hat"), ("foo", "bar"), ("car", "bike")];
        assert_eq!(env.get("car").as_deref(), Some("bike"));
        assert_eq!(env.get("foo").as_deref(), Some("bar"));
        assert_eq!(env.get("Foo"), None);
    }

    #[test]
    fn empty_values_are_set() {
        let env = vec![("foo".to_owned(), String::new())];
        assert_eq!(env.get("foo").as_deref(), Some(""));
        assert_eq!(EmptyEnv.get("foo"), None);
    }

    #[test]
    fn maps_are_environments() {
        let map: HashMap<String, String> = [("a".into(), "1".into())].into();
        assert_eq!(Env::get(&map, "a").as_deref(), Some("1"));
        let map: BTreeMap<&str, &str> = [("b", "2")].into();
        assert_eq!(Env::get(&map, "b").as_deref(), Some("2"));
        assert_eq!(Env::get(&map, "a"), None);
    }
}
