//! The import graph between strata's top-level modules (`archive`, `config`,
//! `snapshot`, ...), read from the source: every `crate::x` path (in `use`
//! lines and in code, grouped `use crate::{a, b::c}` included, `$crate` in
//! macros too) and every `super::` chain that climbs to the crate root. Test
//! code counts: a `mod tests` that imports a module is still an edge.
//!
//! Checked: no cycle between top-level modules (`cli` may depend on
//! everything, nothing on `cli`); the root helper (`privileged`) reaches only
//! the leaf modules `exec` and `names`; `names` depends on nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Modules the privileged helper may reach, directly or not.
const PRIVILEGED_MAY_USE: [&str; 2] = ["exec", "names"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Rust source as tokens with their line numbers, without comments, string,
/// character and number literals, and lifetimes: just enough to read paths.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    // Skips a quoted literal starting at the quote `c[i]`; returns the index after it.
    let skip_quoted = |mut i: usize, line: &mut usize| -> usize {
        let q = c[i];
        i += 1;
        while i < c.len() && c[i] != q {
            if c[i] == '\\' {
                i += 1;
            }
            if at(i) == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= c.len() {
                    break;
                } else if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_quoted(i, &mut line);
        } else if ch == '\'' {
            if at(i + 1) == '\\' || (at(i + 2) == '\'' && at(i + 1) != '\'') {
                i = skip_quoted(i, &mut line);
            } else {
                // A lifetime or a label: the quote and the identifier.
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let prefix = matches!(word.as_str(), "b" | "c" | "r" | "br" | "cr");
            if prefix && (at(i) == '"' || at(i) == '\'') && !word.contains('r') {
                i = skip_quoted(i, &mut line);
            } else if prefix && word.contains('r') && (at(i) == '"' || at(i) == '#') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    // A raw string: ends at a quote followed by as many hashes.
                    i += hashes + 1;
                    while i < c.len() && !(c[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#')) {
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    i += hashes + 1;
                } else {
                    // A raw identifier `r#name`: the name is the token.
                    i += 1;
                    let start = i;
                    while at(i).is_alphanumeric() || at(i) == '_' {
                        i += 1;
                    }
                    out.push((Tok::Ident(c[start..i].iter().collect()), line));
                }
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// The first segment of each path a file names from its crate's root, with
/// its line: after `crate::` (or `$crate::`), or after as many `super::` as
/// `depth`, the module depth of the file (`src/x.rs` and `src/x/mod.rs`: 1,
/// `src/x/y.rs`: 2), counting the inline `mod name { ... }` around the path.
fn root_paths(src: &str, depth: usize) -> Vec<(String, usize)> {
    let t = tokens(src);
    let ident = |k: usize, w: &str| matches!(t.get(k), Some((Tok::Ident(s), _)) if s == w);
    let sep = |k: usize| matches!(t.get(k), Some((Tok::PathSep, _)));
    let mut found = Vec::new();
    // The braces open around the current token: true for an inline module's.
    let mut braces: Vec<bool> = Vec::new();
    let mut k = 0;
    while k < t.len() {
        match &t[k].0 {
            Tok::Punct('{') => {
                braces.push(k >= 2 && ident(k - 2, "mod"));
            }
            Tok::Punct('}') => {
                braces.pop();
            }
            Tok::Ident(w) if w == "crate" && sep(k + 1) => {
                root_segments(&t, k + 2, &mut found);
            }
            Tok::Ident(w) if w == "super" && !(k >= 1 && sep(k - 1)) => {
                let mut n = 0;
                while ident(k + 2 * n, "super") && sep(k + 2 * n + 1) {
                    n += 1;
                }
                let here = depth + braces.iter().filter(|m| **m).count();
                if n > 0 && n == here {
                    root_segments(&t, k + 2 * n, &mut found);
                }
            }
            _ => {}
        }
        k += 1;
    }
    found
}

/// The first segment of the path (or of each path in a `{...}` group) that
/// starts at token `k`.
fn root_segments(t: &[(Tok, usize)], k: usize, found: &mut Vec<(String, usize)>) {
    match t.get(k) {
        Some((Tok::Ident(w), line)) => found.push((w.clone(), *line)),
        Some((Tok::Punct('{'), _)) => {
            let mut depth = 0;
            let mut entry_start = true;
            for (tok, line) in t.iter().skip(k) {
                match tok {
                    Tok::Punct('{') => depth += 1,
                    Tok::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Punct(',') if depth == 1 => entry_start = true,
                    Tok::Ident(w) if depth == 1 && entry_start => {
                        entry_start = false;
                        found.push((w.clone(), *line));
                    }
                    _ => entry_start = false,
                }
            }
        }
        _ => {}
    }
}

/// Where a dependency was seen: a file and a line.
type Evidence = (PathBuf, usize);

/// The graph between top-level modules: each edge with its first evidence.
type Graph = BTreeMap<String, BTreeMap<String, Evidence>>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The graph of the library under `src` (binaries and `lib.rs` excluded:
/// they are the root, not a module).
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let rel = |p: &Path| -> Vec<String> {
        p.strip_prefix(src)
            .unwrap()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    };
    let module_of = |parts: &[String]| -> Option<String> {
        let first = parts.first()?;
        match parts.len() {
            1 => first.strip_suffix(".rs").map(str::to_owned),
            _ => Some(first.clone()),
        }
    };
    let top: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_of(&rel(f)))
        .filter(|m| !matches!(m.as_str(), "lib" | "main" | "bin"))
        .collect();
    let mut g: Graph = top.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for f in &files {
        let parts = rel(f);
        let Some(from) = module_of(&parts) else {
            continue;
        };
        if !top.contains(&from) {
            continue;
        }
        // why: `x/mod.rs` is module `x` (depth 1), `x/y.rs` is `x::y` (depth 2)
        let depth = parts.len() - usize::from(parts.last().is_some_and(|l| l == "mod.rs"));
        let text = std::fs::read_to_string(f).unwrap();
        for (to, line) in root_paths(&text, depth) {
            if to != from && top.contains(&to) {
                g.get_mut(&from).unwrap().entry(to).or_insert_with(|| {
                    (
                        f.strip_prefix(src.parent().unwrap()).unwrap().to_owned(),
                        line,
                    )
                });
            }
        }
    }
    g
}

/// Each cycle of `g`, one per strongly connected component (modules that
/// reach each other): the component, and the shortest cycle through its first
/// module, as a path that ends where it starts.
fn cycles(g: &Graph) -> Vec<(BTreeSet<String>, Vec<String>)> {
    // Modules that can reach each other are one component.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for to in g[&m].keys() {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in g.keys() {
        if done.contains(m) || !reaches[m].contains(m) {
            continue;
        }
        let component: BTreeSet<String> = g
            .keys()
            .filter(|n| *n == m || (reaches[m].contains(*n) && reaches[*n].contains(m)))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        // Breadth first from m back to m, for the shortest cycle.
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([m.clone()]);
        'search: while let Some(n) = queue.pop_front() {
            for to in g[&n].keys() {
                if to == m {
                    // why: prev leads from n back to m (m itself has no prev)
                    let mut path = vec![m.clone(), n.clone()];
                    let mut cur = n.clone();
                    while let Some(p) = prev.get(&cur) {
                        path.push(p.clone());
                        cur = p.clone();
                    }
                    path.reverse();
                    out.push((component, path));
                    break 'search;
                }
                if !prev.contains_key(to) && to != m {
                    prev.insert(to.clone(), n.clone());
                    queue.push_back(to.clone());
                }
            }
        }
    }
    out
}

/// A cycle in words, each step with the line that makes it, then every other
/// import between the modules of its component (each may need undoing).
fn describe(g: &Graph, component: &BTreeSet<String>, cycle: &[String]) -> String {
    let step = |from: &String, to: &String| {
        let (file, line) = &g[from][to];
        format!("{from} -> {to} ({}:{line})", file.display())
    };
    let steps: Vec<String> = cycle.windows(2).map(|w| step(&w[0], &w[1])).collect();
    let in_cycle =
        |from: &String, to: &String| cycle.windows(2).any(|w| &w[0] == from && &w[1] == to);
    let mut others = Vec::new();
    for from in component {
        for to in g[from].keys() {
            if component.contains(to) && !in_cycle(from, to) {
                others.push(step(from, to));
            }
        }
    }
    let mut text = format!("{}: {}", cycle.join(" -> "), steps.join(", "));
    if !others.is_empty() {
        let _ = write!(
            text,
            "; other imports inside the cycle: {}",
            others.join(", ")
        );
    }
    text
}

fn strata_graph() -> Graph {
    graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let g = strata_graph();
    let found = cycles(&g);
    assert!(
        found.is_empty(),
        "import cycles between top-level modules:\n{}",
        found
            .iter()
            .map(|(component, cycle)| describe(&g, component, cycle))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn nothing_depends_on_cli() {
    let g = strata_graph();
    let users: Vec<String> = g
        .iter()
        .filter_map(|(m, to)| {
            to.get("cli")
                .map(|(f, l)| format!("{m} ({}:{l})", f.display()))
        })
        .collect();
    assert!(users.is_empty(), "modules that import cli: {users:?}");
}

#[test]
fn the_root_helper_reaches_only_leaf_modules() {
    let g = strata_graph();
    assert!(
        g.contains_key("privileged") && g.contains_key("names"),
        "{:?}",
        g.keys()
    );
    assert!(g["names"].is_empty(), "names imports {:?}", g["names"]);
    let mut seen = BTreeSet::new();
    let mut todo = vec!["privileged".to_owned()];
    while let Some(m) = todo.pop() {
        for (to, (file, line)) in &g[&m] {
            assert!(
                PRIVILEGED_MAY_USE.contains(&to.as_str()),
                "privileged reaches {to} through {m} ({}:{line})",
                file.display()
            );
            if seen.insert(to.clone()) {
                todo.push(to.clone());
            }
        }
    }
}

#[test]
fn paths_are_read_from_uses_groups_code_and_super_but_not_comments_or_strings() {
    let src = r##"
//! Docs name crate::docs_only.
use crate::a::X;
use crate::{b::Y, c, self as me};
pub(crate) fn f<'l>(x: &'l str) -> char {
    /* crate::in_block /* nested */ crate::still_block */
    let _ = "crate::in_string \" crate::still";
    let _ = r#"crate::raw " crate::raw2"#;
    let _ = b'"';
    let _ = '"';
    crate::d::call();
    'outer: loop { break 'outer; }
    super::e::g();
    'x'
}
mod inner {
    use super::super::h;
    use super::not_root;
    macro_rules! m { () => { $crate::i::j!() } }
}
"##;
    let got: Vec<String> = root_paths(src, 1).into_iter().map(|(m, _)| m).collect();
    assert_eq!(got, ["a", "b", "c", "self", "d", "e", "h", "i"]);
    let lines: Vec<usize> = root_paths(src, 1).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines, [3, 4, 4, 4, 11, 13, 17, 19]);
    // One level deeper, a single `super` stays inside the parent module.
    let deeper: Vec<String> = root_paths(src, 2).into_iter().map(|(m, _)| m).collect();
    assert_eq!(deeper, ["a", "b", "c", "self", "d", "i"]);
}

#[test]
fn a_cycle_is_found_and_named_with_its_lines() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a; pub mod b; pub mod c;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod x;\n").unwrap();
    std::fs::write(src.join("a/x.rs"), "\nuse crate::b::B;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use super::c;\n").unwrap();
    std::fs::write(src.join("c.rs"), "fn f() { crate::a::g(); }\n").unwrap();
    let g = graph(&src);
    let found = cycles(&g);
    assert_eq!(found.len(), 1, "{found:?}");
    let (component, cycle) = &found[0];
    assert_eq!(cycle, &["a", "b", "c", "a"]);
    let text = describe(&g, component, cycle);
    assert!(text.contains("a -> b (src/a/x.rs:2)"), "{text}");
    assert!(text.contains("b -> c (src/b.rs:1)"), "{text}");
    assert!(text.contains("c -> a (src/c.rs:1)"), "{text}");
    assert!(!text.contains("other imports"), "{text}");
    // A shortcut back from b to a is reported beside the shortest cycle.
    std::fs::write(src.join("b.rs"), "use super::c;\nuse crate::a;\n").unwrap();
    let g = graph(&src);
    let found = cycles(&g);
    let (component, cycle) = &found[0];
    assert_eq!(cycle, &["a", "b", "a"]);
    let text = describe(&g, component, cycle);
    assert!(
        text.contains("other imports inside the cycle: b -> c (src/b.rs:1), c -> a (src/c.rs:1)"),
        "{text}"
    );
    std::fs::write(src.join("c.rs"), "fn f() {}\n").unwrap();
    std::fs::write(src.join("b.rs"), "use super::c;\n").unwrap();
    assert!(cycles(&graph(&src)).is_empty());
}
