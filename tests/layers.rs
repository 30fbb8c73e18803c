//! The layering of the code, checked from the sources (ARCHITECTURE.md, "Layers"):
//!
//! 1. No import cycles between modules: in every crate of the workspace, among the children
//!    of any module, the "uses" relation has no cycle. A child may use its parent's items
//!    and a parent its children's; test modules (`#[cfg(test)]` items) are leaves and are
//!    not counted.
//! 2. Each top-level module of the `strato` crate uses only the top-level modules its row of
//!    [`ALLOWED`] names: the log never reaches up into the request handlers, the metrics
//!    never into the broker, the CLI never into the broker's internals.
//!
//! A use is any path starting with `crate::`, `super::` or `self::`, in a `use` declaration
//! or in code, resolved to the longest module prefix that exists as a file. Comments, string
//! literals and `#[cfg(test)]` items are skipped. This is a scanner, not a compiler: it only
//! has to be right about this code base, and the unit tests below pin what it understands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates of the workspace and their source roots, relative to the repository.
const CRATES: &[(&str, &str)] = &[
    ("strato", "src"),
    ("strato-tiering", "tiering/src"),
    ("strato-metadata", "metadata/src"),
    ("strato-metrics", "metrics/src"),
    ("strato-replay", "replay/src"),
];

/// For each top-level module of `strato`, the top-level modules it may use. Bottom layers
/// first; a module missing from the table may use nothing of the crate.
const ALLOWED: &[(&str, &[&str])] = &[
    // Foundations: wire format, identities and credentials, topic settings, membership.
    ("protocol", &[]),
    ("security", &[]),
    ("topic_config", &[]),
    ("cluster", &[]),
    ("producer_ids", &[]),
    ("http_server", &["security"]),
    ("schema_registry", &["http_server", "security"]),
    // The log: partitions, flushes, compaction, retention, GC. Never the handlers.
    ("log", &["cluster", "topic_config"]),
    // Coordinators and measurements, above the log.
    ("group", &["cluster"]),
    ("txn", &["cluster", "log", "producer_ids"]),
    ("metrics", &["log", "protocol", "security"]),
    // The broker's settings, with the limits of the coordinators they configure.
    ("config", &["group", "schema_registry", "security", "txn"]),
    // The request handlers.
    (
        "broker",
        &[
            "cluster",
            "config",
            "group",
            "log",
            "metrics",
            "producer_ids",
            "protocol",
            "schema_registry",
            "security",
            "topic_config",
            "txn",
        ],
    ),
    // What serves the handlers: connections, the console, the operators' endpoint.
    ("connection", &["broker", "metrics", "protocol", "security"]),
    ("console", &["broker", "log", "security", "topic_config"]),
    ("http", &["broker", "console", "http_server"]),
    // The process: wires everything together.
    (
        "server",
        &[
            "broker",
            "cluster",
            "config",
            "connection",
            "group",
            "http",
            "log",
            "metrics",
            "producer_ids",
            "schema_registry",
            "security",
            "txn",
        ],
    ),
    // Fuzz targets (`tests/fuzz.rs`, `fuzz/`): the decoders of untrusted bytes.
    (
        "fuzzing",
        &[
            "broker",
            "connection",
            "metrics",
            "protocol",
            "schema_registry",
            "security",
        ],
    ),
    // The operator CLI talks to brokers over the wire only.
    ("cli", &["config", "protocol", "security"]),
];

type ModPath = Vec<String>;

#[test]
fn no_module_cycles_in_any_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for (name, dir) in CRATES {
        let graph = crate_graph(&root.join(dir));
        assert!(
            graph.modules.len() > 1,
            "{name}: found only {} modules under {dir}",
            graph.modules.len()
        );
        for cycle in sibling_cycles(&graph.edges) {
            problems.push(format!("{name}: {}", describe(&cycle, &graph.edges)));
        }
    }
    assert!(
        problems.is_empty(),
        "module cycles (move what both sides need into a module below them):\n{}",
        problems.join("\n")
    );
}

#[test]
fn top_level_modules_use_only_the_layers_below() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = crate_graph(&root.join("src"));
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let top: BTreeSet<&str> = graph
        .modules
        .keys()
        .filter_map(|m| m.first().map(String::as_str))
        .collect();
    let mut problems = Vec::new();
    for module in &top {
        if !allowed.contains_key(module) {
            problems.push(format!(
                "{module}: not in ALLOWED (tests/layers.rs): give it a layer"
            ));
        }
    }
    for (from, tos) in &graph.edges {
        let [from] = from.as_slice() else { continue };
        for to in tos {
            let [to] = to.as_slice() else { continue };
            let ok = allowed
                .get(from.as_str())
                .is_some_and(|list| list.contains(&to.as_str()));
            if !ok {
                problems.push(format!("{from} uses {to}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken (ARCHITECTURE.md, Layers):\n{}",
        problems.join("\n")
    );
}

/// The modules of one crate (by path, with their files) and the sibling edges between them:
/// a use from module `a::b::c` of module `a::d::e` is the edge `a::b -> a::d`.
struct Graph {
    modules: BTreeMap<ModPath, PathBuf>,
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

fn crate_graph(src: &Path) -> Graph {
    let mut modules = BTreeMap::new();
    collect_files(src, src, &mut modules);
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        for (scope, path) in uses(module, &text) {
            let Some(target) = resolve(&modules, &scope, &path) else {
                continue;
            };
            if let Some((a, b)) = sibling_edge(module, &target) {
                edges.entry(a).or_default().insert(b);
            }
        }
    }
    Graph { modules, edges }
}

/// Every `.rs` file under `dir` as a module path: `lib.rs` is the root, `a/mod.rs` and
/// `a.rs` are `a`. Binary roots (`main.rs`, `bin/`) are crates of their own and left out.
fn collect_files(src: &Path, dir: &Path, out: &mut BTreeMap<ModPath, PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") && dir == src {
                continue;
            }
            collect_files(src, &path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(src).unwrap().with_extension("");
        let mut parts: ModPath = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.as_slice() == ["main"] {
            continue;
        }
        if parts
            .last()
            .is_some_and(|last| last == "mod" || last == "lib")
        {
            parts.pop();
        }
        out.insert(parts, path);
    }
}

/// The module a path names: the longest prefix of it that is a module of the crate.
fn resolve(
    modules: &BTreeMap<ModPath, PathBuf>,
    scope: &[String],
    path: &[String],
) -> Option<ModPath> {
    let mut full: ModPath = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("self") => {
            full = scope.to_vec();
            rest = &path[1..];
        }
        Some("super") => {
            full = scope.to_vec();
            while rest.first().is_some_and(|p| p == "super") {
                full.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    full.extend(rest.iter().cloned());
    (0..=full.len())
        .rev()
        .map(|len| full[..len].to_vec())
        .find(|prefix| modules.contains_key(prefix))
}

/// The edge between the two children of the modules' closest common ancestor that contain
/// them, or None when one module contains the other.
fn sibling_edge(from: &[String], to: &[String]) -> Option<(ModPath, ModPath)> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some((from[..=common].to_vec(), to[..=common].to_vec()))
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn sibling_cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, (usize, usize)>,
        stack: Vec<&'a ModPath>,
        next: usize,
        found: Vec<Vec<ModPath>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a ModPath) {
            self.index.insert(v, (self.next, self.next));
            self.next += 1;
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                match self.index.get(w) {
                    None => {
                        self.visit(w);
                        let low_w = self.index[w].1;
                        let entry = self.index.get_mut(v).unwrap();
                        entry.1 = entry.1.min(low_w);
                    }
                    Some(&(index_w, _)) if self.stack.contains(&w) => {
                        let entry = self.index.get_mut(v).unwrap();
                        entry.1 = entry.1.min(index_w);
                    }
                    Some(_) => {}
                }
            }
            let (index_v, low_v) = self.index[v];
            if index_v == low_v {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.found
}

fn describe(cycle: &[ModPath], edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> String {
    let mut arrows = Vec::new();
    for a in cycle {
        for b in edges.get(a).into_iter().flatten() {
            if cycle.contains(b) {
                arrows.push(format!("{} -> {}", a.join("::"), b.join("::")));
            }
        }
    }
    arrows.join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// Rust source as tokens, without comments, string, byte-string and char literals (their
/// contents could look like paths), lifetimes and numbers.
fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            i = end;
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            out.push(Token::Ident(ident.trim_start_matches("r#").to_string()));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token::PathSep);
            i += 2;
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

/// Where a raw (byte) string literal starting at `i` ends, if one starts there.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take_while(|c| **c == '#').count() >= hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// Every crate-relative path used in the file of `module`, with the module it is used from
/// (the file's module or an inline module in it). `#[cfg(test)]` items are skipped.
fn uses(module: &[String], text: &str) -> Vec<(ModPath, ModPath)> {
    let tokens = tokens(text);
    let mut found = Vec::new();
    // Inline modules open at a brace depth: (name, depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let ident = |i: usize| match tokens.get(i) {
        Some(Token::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let punct = |i: usize, c: char| tokens.get(i) == Some(&Token::Punct(c));
    while i < tokens.len() {
        let scope = || {
            let mut s = module.to_vec();
            s.extend(inline.iter().map(|(name, _)| name.clone()));
            s
        };
        if is_cfg_test(&tokens, i) {
            i = skip_item(&tokens, i + 6);
            continue;
        }
        match &tokens[i] {
            Token::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Token::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(name), true) = (ident(i + 1), punct(i + 2, '{')) {
                    let name = name.to_string();
                    depth += 1;
                    inline.push((name, depth));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Token::Ident(word) if word == "use" => {
                let scope = scope();
                let (paths, next) = use_tree(&tokens, i + 1, Vec::new());
                found.extend(paths.into_iter().map(|p| (scope.clone(), p)));
                i = next;
            }
            Token::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && tokens.get(i + 1) == Some(&Token::PathSep)
                    && !(i > 0 && tokens[i - 1] == Token::Punct('$')) =>
            {
                let mut path = vec![word.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Token::PathSep) {
                    match ident(j + 1) {
                        Some(next) => path.push(next.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                found.push((scope(), path));
                i = j;
            }
            _ => i += 1,
        }
    }
    found
}

/// Whether tokens at `i` are `# [ cfg ( test ) ]`.
fn is_cfg_test(tokens: &[Token], i: usize) -> bool {
    let want = [
        Token::Punct('#'),
        Token::Punct('['),
        Token::Ident("cfg".into()),
        Token::Punct('('),
        Token::Ident("test".into()),
        Token::Punct(')'),
        Token::Punct(']'),
    ];
    tokens.get(i..i + want.len()) == Some(&want[..])
}

/// The index after the item starting at `i`: a `use` ends at its `;`, others at their
/// first `;` outside brackets or at the brace that closes their first `{`.
fn skip_item(tokens: &[Token], mut i: usize) -> usize {
    // Past the `]` of the attribute.
    i += 1;
    let is_use = tokens[i..]
        .iter()
        .find(|t| !matches!(t, Token::Ident(w) if w == "pub") && **t != Token::Punct('('))
        .is_some_and(|t| *t == Token::Ident("use".into()));
    let mut depth = 0usize;
    while i < tokens.len() {
        match tokens[i] {
            Token::Punct(';') if depth == 0 || is_use => return i + 1,
            Token::Punct('{' | '(' | '[') => depth += 1,
            Token::Punct('}' | ')' | ']') => {
                depth = depth.saturating_sub(1);
                if depth == 0 && tokens[i] == Token::Punct('}') && !is_use {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The paths of a use tree starting at `i` (after `use` or inside a group), each prefixed
/// with `prefix`, and the index after it. Only paths starting with `crate`, `super` or
/// `self` are kept.
fn use_tree(tokens: &[Token], mut i: usize, prefix: ModPath) -> (Vec<ModPath>, usize) {
    let mut paths = Vec::new();
    let mut path = prefix;
    loop {
        match tokens.get(i) {
            Some(Token::Ident(word)) if word == "as" => {
                // `as name` renames the last segment: the path is already complete.
                i += 2;
            }
            // `self` in a group names the group's module itself.
            Some(Token::Ident(word)) if word == "self" && !path.is_empty() => i += 1,
            Some(Token::Ident(word)) => {
                path.push(word.clone());
                i += 1;
            }
            Some(Token::PathSep) => i += 1,
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    let (inner, next) = use_tree(tokens, i, path.clone());
                    paths.extend(inner);
                    i = next;
                    match tokens.get(i) {
                        Some(Token::Punct(',')) => i += 1,
                        Some(Token::Punct('}')) => {
                            i += 1;
                            break;
                        }
                        _ => return (paths, i),
                    }
                    if tokens.get(i) == Some(&Token::Punct('}')) {
                        i += 1;
                        break;
                    }
                }
                return (paths, i);
            }
            Some(Token::Punct('*')) => i += 1,
            Some(Token::Punct(';')) => return (keep(paths, path), i + 1),
            _ => return (keep(paths, path), i),
        }
    }
}

fn keep(mut paths: Vec<ModPath>, path: ModPath) -> Vec<ModPath> {
    if path
        .first()
        .is_some_and(|p| matches!(p.as_str(), "crate" | "super" | "self"))
    {
        paths.push(path);
    }
    paths
}

fn mp(path: &str) -> ModPath {
    path.split("::").map(String::from).collect()
}

#[test]
fn the_scanner_reads_use_trees_paths_and_skips_tests_comments_and_strings() {
    let text = r##"
        //! Uses crate::nope in a comment.
        use std::fmt;
        use crate::a::{b::{self, C}, d as e};
        pub use super::f::*;
        use self::inner::G;
        /* crate::block::comment */
        fn x() -> &'static str {
            let _ = crate::h::i(super::super::j::K);
            let _ = '"';
            let _ = "crate::in_string";
            let _ = r#"crate::raw "quote" string"#;
            let _ = $crate::macro_path;
            "done"
        }
        mod inner {
            use super::super::l;
        }
        #[cfg(test)]
        mod tests {
            use crate::test_only;
        }
        #[cfg(test)]
        use crate::test_import;
        #[cfg(test)]
        fn helper() { crate::test_fn(); }
        use crate::last;
    "##;
    let found: Vec<(String, String)> = uses(&mp("m::n"), text)
        .into_iter()
        .map(|(scope, path)| (scope.join("::"), path.join("::")))
        .collect();
    let expected: Vec<(String, String)> = [
        ("m::n", "crate::a::b"),
        ("m::n", "crate::a::b::C"),
        ("m::n", "crate::a::d"),
        ("m::n", "super::f"),
        ("m::n", "self::inner::G"),
        ("m::n", "crate::h::i"),
        ("m::n", "super::super::j::K"),
        ("m::n::inner", "super::super::l"),
        ("m::n", "crate::last"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn paths_resolve_to_modules_and_project_to_siblings() {
    let modules: BTreeMap<ModPath, PathBuf> = ["", "a", "a::b", "a::c", "d"]
        .iter()
        .map(|m| {
            let path = if m.is_empty() { Vec::new() } else { mp(m) };
            (path, PathBuf::new())
        })
        .collect();
    let scope = mp("a::b");
    assert_eq!(
        resolve(&modules, &scope, &mp("crate::a::c::Item")),
        Some(mp("a::c"))
    );
    assert_eq!(
        resolve(&modules, &scope, &mp("super::c::f")),
        Some(mp("a::c"))
    );
    assert_eq!(
        resolve(&modules, &scope, &mp("super::super::d")),
        Some(mp("d"))
    );
    assert_eq!(resolve(&modules, &scope, &mp("crate::Root")), Some(vec![]));
    assert_eq!(resolve(&modules, &scope, &mp("std::fmt")), None);
    assert_eq!(
        sibling_edge(&mp("a::b"), &mp("a::c")),
        Some((mp("a::b"), mp("a::c")))
    );
    assert_eq!(
        sibling_edge(&mp("a::b"), &mp("d")),
        Some((mp("a"), mp("d")))
    );
    assert_eq!(sibling_edge(&mp("a::b"), &mp("a")), None);
    assert_eq!(sibling_edge(&mp("a"), &mp("a::b")), None);
    let edges: BTreeMap<ModPath, BTreeSet<ModPath>> = [
        (mp("a"), [mp("d")].into()),
        (mp("d"), [mp("e")].into()),
        (mp("e"), [mp("a")].into()),
        (mp("f"), [mp("a")].into()),
    ]
    .into();
    assert_eq!(
        sibling_cycles(&edges),
        vec![vec![mp("a"), mp("d"), mp("e")]]
    );
}
