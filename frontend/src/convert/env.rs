//! The ordered environment of a build step, as BuildKit's `llb.EnvList` keeps it.

use crate::shell::Env;

/// Variables in the order of their last assignment: redefining a variable moves it
/// to the end, which is the order BuildKit writes them into an exec's `env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList {
    vars: Vec<(String, String)>,
}

impl EnvList {
    /// Sets `key`, moving it after every other variable.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.vars.retain(|(k, _)| k != key);
    }

    /// The value of `key`.
    pub fn lookup(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The variables in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `KEY=value` strings, as an exec's environment.
    pub fn to_strings(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

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
    }
}
