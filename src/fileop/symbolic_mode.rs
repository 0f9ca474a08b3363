//! `COPY --chmod=u+x,g-w`: symbolic modes, applied to each copied entry as BuildKit applies
//! them. BuildKit's copy (fsutil) uses a Go port of BSD's setmode(3) with no umask, so its
//! rules are BSD chmod's, quirks included, rather than GNU's:
//! - a clause is `[ugoa]*` followed by one or more actions, an action an operator `+ - =`
//!   and permission letters `rwxXst` or the class letters `ugo` (copy that class's bits);
//!   clauses are separated by `,`, and a trailing or doubled `,` is an error;
//! - no class means all of them (`+w` gives everyone write: there is no umask);
//! - `X` is execute for an entry that is a directory or whose mode *before the whole
//!   expression* has an execute bit, and nothing for any other;
//! - `s` and `t` count only for a class other than `o` alone (or none): `o+t` does nothing,
//!   `u+t` sets the sticky bit;
//! - `=` clears the named classes (with no class: everything but the sticky bit) first.
//!
//! Checked against Docker 28.5 (the cases in the tests below are what it produced).

/// Set-user-id, set-group-id and the permission bits of every class.
const STANDARD_BITS: u32 = 0o6777;
const STICKY: u32 = 0o1000;
const EXEC_ALL: u32 = 0o111;

/// A `--chmod` value that is neither octal nor a valid symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --chmod value {0:?}: neither an octal mode nor a symbolic one (u+x,g-w)")]
pub struct BadMode(pub String);

/// A parsed symbolic (or octal) mode, ready to apply to any number of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicMode {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Add(u32),
    Remove(u32),
    /// `+X`, `=X`: these execute bits, if the entry is a directory or already executable.
    AddExecIfAny(u32),
    /// `-X`: the same condition.
    RemoveExecIfAny(u32),
    /// `o=u` and the like: the 3 bits of the class at `from` (a shift: 6, 3 or 0) into
    /// the classes at `to`, clearing them first (`=`, `-`) and setting them (`=`, `+`).
    CopyClass {
        from: u32,
        to: [bool; 3],
        clear: bool,
        set: bool,
    },
}

/// The shifts of the user, group and other classes' permission bits.
const SHIFTS: [u32; 3] = [6, 3, 0];

impl SymbolicMode {
    /// Parses `text` as BuildKit does.
    pub fn parse(text: &str) -> Result<Self, BadMode> {
        let bad = || BadMode(text.to_owned());
        let bytes = text.as_bytes();
        match bytes.first() {
            None => return Err(bad()),
            Some(d) if d.is_ascii_digit() => {
                let value = u32::from_str_radix(text, 8).map_err(|_| bad())?;
                if value & !(STANDARD_BITS | STICKY) != 0 {
                    return Err(bad());
                }
                return Ok(Self {
                    steps: vec![Step::Remove(STANDARD_BITS | STICKY), Step::Add(value)],
                });
            }
            Some(_) => {}
        }
        let mut steps = Vec::new();
        let mut i = 0;
        let mut equal_done = false;
        loop {
            // The classes of one clause.
            let mut who = 0;
            while let Some(class) = bytes.get(i).and_then(|b| class_bits(*b)) {
                who |= class;
                i += 1;
            }
            // Its actions, until `,` or the end.
            loop {
                let op = *bytes.get(i).ok_or_else(bad)?;
                if !matches!(op, b'+' | b'-' | b'=') {
                    return Err(bad());
                }
                if op == b'=' {
                    equal_done = false;
                }
                i += 1;
                who &= !STICKY;
                let mut perm = 0;
                let mut exec_if_any = 0;
                loop {
                    let letter = bytes.get(i).copied();
                    let beyond_other = who == 0 || who & !0o007 != 0;
                    match letter {
                        Some(b'r') => perm |= 0o444,
                        Some(b'w') => perm |= 0o222,
                        Some(b'x') => perm |= EXEC_ALL,
                        Some(b's') if beyond_other => perm |= 0o6000,
                        Some(b't') if beyond_other => {
                            who |= STICKY;
                            perm |= STICKY;
                        }
                        Some(b's' | b't') => {}
                        Some(b'X') => exec_if_any = EXEC_ALL,
                        Some(from @ (b'u' | b'g' | b'o')) => {
                            if perm != 0 {
                                push_bits(&mut steps, op, who, perm);
                                perm = 0;
                            }
                            if op == b'=' {
                                equal_done = true;
                            }
                            if exec_if_any != 0 {
                                steps.push(exec_step(op, restrict(who, exec_if_any)));
                                exec_if_any = 0;
                            }
                            steps.push(copy_class(from, who, op));
                        }
                        _ => {
                            if perm != 0 || (op == b'=' && !equal_done) {
                                if op == b'=' {
                                    equal_done = true;
                                }
                                push_bits(&mut steps, op, who, perm);
                            }
                            if exec_if_any != 0 {
                                steps.push(exec_step(op, restrict(who, exec_if_any)));
                            }
                            break;
                        }
                    }
                    i += 1;
                }
                match bytes.get(i) {
                    None => return Ok(Self { steps }),
                    Some(b',') => {
                        i += 1;
                        break;
                    }
                    Some(_) => {}
                }
            }
            if i == bytes.len() {
                return Err(bad());
            }
        }
    }

    /// The permission bits (with set-id and sticky bits) of an entry whose current ones are
    /// `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let original = mode & (STANDARD_BITS | STICKY);
        let executable = is_dir || original & EXEC_ALL != 0;
        let mut mode = original;
        for step in &self.steps {
            match *step {
                Step::Add(bits) => mode |= bits,
                Step::Remove(bits) => mode &= !bits,
                Step::AddExecIfAny(bits) if executable => mode |= bits,
                Step::RemoveExecIfAny(bits) if executable => mode &= !bits,
                Step::AddExecIfAny(_) | Step::RemoveExecIfAny(_) => {}
                Step::CopyClass {
                    from,
                    to,
                    clear,
                    set,
                } => {
                    let value = (mode >> from) & 0o7;
                    let cleared = if set { 0o7 } else { value };
                    for (shift, _) in SHIFTS.iter().zip(to).filter(|(_, on)| *on) {
                        if clear {
                            mode &= !(cleared << shift);
                        }
                    }
                    for (shift, _) in SHIFTS.iter().zip(to).filter(|(_, on)| *on) {
                        if set {
                            mode |= value << shift;
                        }
                    }
                }
            }
        }
        mode
    }
}

fn class_bits(letter: u8) -> Option<u32> {
    match letter {
        b'a' => Some(STANDARD_BITS),
        b'u' => Some(0o4700),
        b'g' => Some(0o2070),
        b'o' => Some(0o0007),
        _ => None,
    }
}

/// `bits` limited to the classes of `who` (all of them when none was named).
fn restrict(who: u32, bits: u32) -> u32 {
    if who == 0 { bits } else { who & bits }
}

fn push_bits(steps: &mut Vec<Step>, op: u8, who: u32, perm: u32) {
    match op {
        b'+' => steps.push(Step::Add(restrict(who, perm))),
        b'-' => steps.push(Step::Remove(restrict(who, perm))),
        _ => {
            steps.push(Step::Remove(if who == 0 { STANDARD_BITS } else { who }));
            steps.push(Step::Add(restrict(who, perm)));
        }
    }
}

fn exec_step(op: u8, bits: u32) -> Step {
    if op == b'-' {
        Step::RemoveExecIfAny(bits)
    } else {
        Step::AddExecIfAny(bits)
    }
}

fn copy_class(from: u8, who: u32, op: u8) -> Step {
    // Which classes receive the copy is read from their read bits, as setmode does.
    let to = if who == 0 {
        [true; 3]
    } else {
        [who & 0o400 != 0, who & 0o040 != 0, who & 0o004 != 0]
    };
    Step::CopyClass {
        from: match from {
            b'u' => 6,
            b'g' => 3,
            _ => 0,
        },
        to,
        clear: op != b'+',
        set: op != b'-',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(mode: &str, perm: u32, is_dir: bool) -> u32 {
        SymbolicMode::parse(mode).unwrap().apply(perm, is_dir)
    }

    /// What Docker 28.5 made of a file (0644), an executable (0755) and a directory (0755).
    #[test]
    fn modes_as_docker_28_applies_them() {
        let cases: &[(&str, u32, u32, u32)] = &[
            ("u+x,g-w", 0o744, 0o755, 0o755),
            ("a=rX", 0o444, 0o555, 0o555),
            ("go=", 0o600, 0o700, 0o700),
            ("+x", 0o755, 0o755, 0o755),
            ("u=rwx,g=u,o=g-w", 0o775, 0o775, 0o775),
            ("u+s,g+s,+t", 0o7644, 0o7755, 0o7755),
            ("o+r,a-w", 0o444, 0o555, 0o555),
            ("+w", 0o666, 0o777, 0o777),
            ("=rw", 0o666, 0o666, 0o666),
            ("-r", 0o200, 0o311, 0o311),
            ("ug=rw,o-rwx", 0o660, 0o660, 0o660),
            ("u+X", 0o644, 0o755, 0o755),
            ("a+X,u-x", 0o644, 0o655, 0o655),
            ("u+x,g+X", 0o744, 0o755, 0o755),
            ("a=r,a+X", 0o444, 0o555, 0o555),
            ("u=r+x-r", 0o144, 0o155, 0o155),
            ("ug+s,o+t", 0o6644, 0o6755, 0o6755),
            ("u+t,g-s", 0o1644, 0o1755, 0o1755),
            ("o=u", 0o646, 0o757, 0o757),
            ("ugo+w,uo-r", 0o262, 0o373, 0o373),
            ("a+rwxst", 0o7777, 0o7777, 0o7777),
            ("a-rwxst", 0, 0, 0),
            ("o=gr", 0o644, 0o754, 0o754),
            ("o=ug", 0o644, 0o755, 0o755),
            ("+x+w", 0o777, 0o777, 0o777),
            ("=", 0, 0, 0),
            ("+", 0o644, 0o755, 0o755),
            ("u-", 0o644, 0o755, 0o755),
            ("g=o+r", 0o644, 0o755, 0o755),
            ("1777", 0o1777, 0o1777, 0o1777),
            ("a-X", 0o644, 0o644, 0o644),
            ("u=X", 0o044, 0o155, 0o155),
            ("go=X", 0o600, 0o711, 0o711),
            ("a=X", 0, 0o111, 0o111),
            ("=X", 0, 0o111, 0o111),
            ("u-X,g+X", 0o644, 0o655, 0o655),
            ("o=rX,u=X", 0o044, 0o155, 0o155),
            ("+X", 0o644, 0o755, 0o755),
        ];
        for &(mode, file, exe, dir) in cases {
            assert_eq!(apply(mode, 0o644, false), file, "{mode} on a file");
            assert_eq!(apply(mode, 0o755, false), exe, "{mode} on an executable");
            assert_eq!(apply(mode, 0o755, true), dir, "{mode} on a directory");
        }
    }

    #[test]
    fn x_only_for_directories_and_executables() {
        // A directory that is not searchable still gets X.
        assert_eq!(apply("a+X", 0o700, true), 0o711);
        assert_eq!(apply("u=rwX,go=rX", 0o644, false), 0o644);
        assert_eq!(apply("u=rX,go=r", 0o750, true), 0o544);
    }

    #[test]
    fn syntax_errors_as_docker_28_reports_them() {
        for bad in [
            "", ",u+x", "u+x,", "u+x,,g+w", "U+x", "u", "z+x", "u+q", "17777", "0o755",
        ] {
            assert_eq!(
                SymbolicMode::parse(bad),
                Err(BadMode(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
