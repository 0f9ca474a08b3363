//! The ordered environment of a build step, as BuildKit's `llb.EnvList` keeps it.

use std::collections::HashMap;

use crate::shell::Env;

/// Variables in the order of their last assignment: redefining a variable moves it
/// to the end, which is the order BuildKit writes them into an exec's `env`.
///
/// Setting, removing and looking up cost the same however many variables there are (a
/// Dockerfile may have thousands of ENV instructions): a variable's old slot is left empty
/// instead of shifting the ones after it.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvList {
    slots: Vec<Option<(String, String)>>,
    /// The slot of each variable.
    index: HashMap<String, usize>,
}

impl EnvList {
    /// Sets `key`, moving it after every other variable.
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.remove(key);
        self.index.insert(key.to_owned(), self.slots.len());
        self.slots.push(Some((key.to_owned(), value.to_owned())));
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(slot) = self.index.remove(key) {
            self.slots[slot] = None;
        }
    }

    /// The value of `key`.
    pub(crate) fn lookup(&self, key: &str) -> Option<&str> {
        let slot = self.slots.get(*self.index.get(key)?)?;
        slot.as_ref().map(|(_, v)| v.as_str())
    }

    /// The variables in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `KEY=value` strings, as an exec's environment.
    pub(crate) fn to_strings(&self) -> Vec<String> {
        self.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl PartialEq for EnvList {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for EnvList {}

impl Env for EnvList {
    fn get(&self, name: &str) -> Option<String> {
        self.lookup(name).map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassignment_moves_a_variable_last() {
        let mut env = EnvList::default();
        env.set("A", "1");
        env.set("B", "2");
        env.set("A", "3");
        assert_eq!(env.to_strings(), ["B=2", "A=3"]);
        assert_eq!(env.get("A").as_deref(), Some("3"));
        env.remove("B");
        assert_eq!(env.to_strings(), ["A=3"]);
        assert_eq!(env.get("B"), None);
        env.set("B", "4");
        env.set("A", "5");
        assert_eq!(env.to_strings(), ["B=4", "A=5"]);
        let mut same = EnvList::default();
        same.set("B", "4");
        same.set("A", "5");
        assert_eq!(env, same);
    }
}
