//! `.syncignore` matcher: gitignore semantics (see `man gitignore`, PATTERN FORMAT) applied to
//! '/'-separated paths relative to the sync root, identically for local paths and remote S3 keys.
//!
//! Patterns are compiled at parse time into per-component segments; matching walks path components
//! without allocating. Components use a small glob engine (`*`, `?`, `[...]`/`[!...]`, `\` escapes;
//! nothing crosses a `/`). A `**` component matches zero or more components (trailing `/**`: one+).

use std::str::Split;

use crate::fsutil::TMP_PREFIX;

/// One token of a single-component glob.
#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `?`: any single character.
    Any,
    /// `*`: any run of characters (consecutive stars collapsed).
    Star,
    /// `[...]`: (negated, inclusive char ranges).
    Class(bool, Vec<(char, char)>),
}

/// One path-component matcher.
#[derive(Debug, Clone)]
enum Seg {
    /// No wildcards: plain string comparison.
    Lit(String),
    Glob(Vec<Tok>),
    /// `**`: zero or more whole components.
    DoubleStar,
}

#[derive(Debug, Clone)]
struct Rule {
    negate: bool,
    dir_only: bool,
    /// Matched against the full relative path; otherwise `segs` has one element matched
    /// against the basename at every level.
    anchored: bool,
    segs: Vec<Seg>,
    /// Inclusive range of path depths (component counts) an anchored match can have.
    depths: (usize, usize),
}

/// Compiled `.syncignore` rules.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

/// Names always ignored at the root (cannot be negated).
const ROOT_RESERVED: [&str; 3] = [".index", ".s4lock", ".s4lease"];
/// Basename prefix of temp files, always ignored at any depth.
/// s4's own files at the root (index, lock, lease and its probes), never synced as content.
pub fn is_reserved(path: &str) -> bool {
    ROOT_RESERVED.contains(&path) || LEASE_OBJECTS.iter().any(|p| path.starts_with(p))
}

/// The probe objects s4 writes beside the index to learn whether a store honours conditional
/// writes (deleted at once; a crash may leave one).
pub const LEASE_PROBE_PREFIX: &str = ".s4lease.probe-";
/// Objects s4 writes beside the index: store probes and lease intents (sync/lease.rs).
const LEASE_OBJECTS: [&str; 2] = [LEASE_PROBE_PREFIX, ".s4lease.intent-"];

impl IgnoreRules {
    /// Parse the text of a .syncignore (may be empty).
    pub fn parse(text: &str) -> IgnoreRules {
        IgnoreRules { rules: text.lines().filter_map(parse_line).collect() }
    }

    /// Is this relative path ignored? `path` is '/'-separated without a leading '/', is_dir says whether it is a
    /// directory (local scan knows; remote keys are files). Checks ancestors: if any ancestor directory
    /// ("a", "a/b" for "a/b/c") is ignored, the path is ignored.
    pub fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return false;
        }
        let first = path.split('/').next().unwrap_or(path);
        if ROOT_RESERVED.contains(&first)
            || LEASE_OBJECTS.iter().any(|p| first.starts_with(p))
            || path.split('/').any(|c| c.starts_with(TMP_PREFIX))
        {
            return true;
        }
        if self.rules.is_empty() {
            return false;
        }
        // Ancestor directories first, as git does when it stops descending into excluded dirs.
        let mut start = 0;
        let mut depth = 1;
        for (i, _) in path.match_indices('/') {
            if self.level_excluded(&path[..i], &path[start..i], depth, true) {
                return true;
            }
            start = i + 1;
            depth += 1;
        }
        self.level_excluded(path, &path[start..], depth, is_dir)
    }

    /// For the local scan: is this directory (relative path) excluded so the walk need not descend? (same answer as is_ignored(dir, true))
    pub fn is_dir_excluded(&self, dir: &str) -> bool {
        self.is_ignored(dir, true)
    }

    /// Number of user patterns (for logs).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when the file had no user patterns (built-ins still apply).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Does the last rule matching exactly `path` (with `depth` components, last one `base`)
    /// exclude it? Ancestors are not considered here.
    fn level_excluded(&self, path: &str, base: &str, depth: usize, is_dir: bool) -> bool {
        for r in self.rules.iter().rev() {
            if r.dir_only && !is_dir {
                continue;
            }
            let hit = if r.anchored {
                (r.depths.0..=r.depths.1).contains(&depth) && match_segs(&r.segs, path.split('/'))
            } else {
                r.segs[0].matches(base)
            };
            if hit {
                return !r.negate;
            }
        }
        false
    }
}

/// Compile one line of a .syncignore; `None` for blanks, comments and empty patterns.
fn parse_line(line: &str) -> Option<Rule> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.starts_with('#') {
        return None;
    }
    let mut pat = trim_trailing_spaces(line);
    let negate = pat.starts_with('!');
    if negate {
        pat = &pat[1..];
    }
    let dir_only = pat.ends_with('/');
    if dir_only {
        pat = &pat[..pat.len() - 1];
    }
    let anchored = pat.contains('/');
    if let Some(p) = pat.strip_prefix('/') {
        pat = p;
    }
    if pat.is_empty() {
        return None;
    }
    let mut segs: Vec<Seg> = pat.split('/').map(compile_seg).collect();
    if anchored && matches!(segs.last(), Some(Seg::DoubleStar)) {
        // Trailing "/**" matches everything inside, not the directory itself: one or more.
        segs.insert(segs.len() - 1, Seg::Glob(vec![Tok::Star]));
    }
    let min = segs.iter().filter(|s| !matches!(s, Seg::DoubleStar)).count();
    let max = if min < segs.len() { usize::MAX } else { min };
    Some(Rule { negate, dir_only, anchored, segs, depths: (min, max) })
}

/// Remove trailing spaces unless escaped with a backslash (`foo\ ` keeps one space).
fn trim_trailing_spaces(s: &str) -> &str {
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 && b[end - 1] == b' ' {
        let backslashes = b[..end - 1].iter().rev().take_while(|&&c| c == b'\\').count();
        if backslashes % 2 == 1 {
            break;
        }
        end -= 1;
    }
    &s[..end]
}

fn compile_seg(comp: &str) -> Seg {
    if comp == "**" {
        return Seg::DoubleStar;
    }
    let toks = tokenize(comp);
    let lit: Option<String> = toks.iter().map(|t| if let Tok::Lit(c) = t { Some(*c) } else { None }).collect();
    lit.map_or(Seg::Glob(toks), Seg::Lit)
}

fn tokenize(comp: &str) -> Vec<Tok> {
    let chars: Vec<char> = comp.chars().collect();
    let mut toks = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                toks.push(Tok::Lit(chars[i + 1]));
                i += 2;
                continue;
            }
            '?' => toks.push(Tok::Any),
            '*' if matches!(toks.last(), Some(Tok::Star)) => {}
            '*' => toks.push(Tok::Star),
            '[' => {
                if let Some((tok, next)) = parse_class(&chars, i) {
                    toks.push(tok);
                    i = next;
                    continue;
                }
                toks.push(Tok::Lit('['));
            }
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    toks
}

/// Parse a `[...]` class starting at `chars[open] == '['`; returns the token and the index after
/// the closing `]`, or `None` if unterminated (then `[` is literal).
fn parse_class(chars: &[char], open: usize) -> Option<(Tok, usize)> {
    let mut i = open + 1;
    let neg = matches!(chars.get(i), Some('!') | Some('^'));
    if neg {
        i += 1;
    }
    let (mut ranges, start) = (Vec::new(), i);
    loop {
        let mut c = *chars.get(i)?;
        if c == ']' && i > start {
            return Some((Tok::Class(neg, ranges), i + 1));
        }
        if c == '\\' {
            i += 1;
            c = *chars.get(i)?;
        }
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&e| e != ']') {
            let mut hi = chars[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *chars.get(i)?;
                i += 1;
            }
            ranges.push((c, hi));
        } else {
            ranges.push((c, c));
        }
    }
}

impl Seg {
    fn matches(&self, comp: &str) -> bool {
        match self {
            Seg::Lit(s) => s == comp,
            Seg::Glob(toks) => glob_match(toks, comp),
            Seg::DoubleStar => true,
        }
    }
}

/// Match compiled segments against path components; `**` consumes zero or more components.
fn match_segs(segs: &[Seg], mut comps: Split<'_, char>) -> bool {
    for (i, seg) in segs.iter().enumerate() {
        if let Seg::DoubleStar = seg {
            let rest = &segs[i + 1..];
            if rest.is_empty() {
                return true;
            }
            loop {
                if match_segs(rest, comps.clone()) {
                    return true;
                }
                if comps.next().is_none() {
                    return false;
                }
            }
        }
        if !comps.next().is_some_and(|c| seg.matches(c)) {
            return false;
        }
    }
    comps.next().is_none()
}

/// Glob-match one component (no '/' inside), with single-star backtracking.
fn glob_match(toks: &[Tok], text: &str) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(c) = text[s..].chars().next() {
        if let Some(t) = toks.get(p) {
            let ok = match t {
                Tok::Star => {
                    star = Some((p, s));
                    p += 1;
                    continue;
                }
                Tok::Lit(l) => *l == c,
                Tok::Any => true,
                Tok::Class(neg, ranges) => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg,
            };
            if ok {
                p += 1;
                s += c.len_utf8();
                continue;
            }
        }
        let Some((sp, ss)) = star else { return false };
        let skip = text[ss..].chars().next().map_or(1, char::len_utf8);
        star = Some((sp, ss + skip));
        (p, s) = (sp + 1, ss + skip);
    }
    toks[p..].iter().all(|t| matches!(t, Tok::Star))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (syncignore text, relative path, is_dir, expected ignored)
    const CASES: &[(&str, &str, bool, bool)] = &[
        // unanchored glob at any depth
        ("*.log", "a.log", false, true),
        ("*.log", "x/y/a.log", false, true),
        ("*.log", "a.log.txt", false, false),
        ("*.log", "x.log/inner", false, true),
        // directory-only
        ("build/", "build", true, true),
        ("build/", "build/x", false, true),
        ("build/", "build", false, false),
        ("build/", "src/build/x", false, true),
        // anchored
        ("/build", "build/x", false, true),
        ("/build", "src/build/x", false, false),
        ("doc/*.txt", "doc/a.txt", false, true),
        ("doc/*.txt", "doc/sub/a.txt", false, false),
        ("doc/*.txt", "x/doc/a.txt", false, false),
        // ** forms
        ("**/foo", "foo", false, true),
        ("**/foo", "a/foo", false, true),
        ("**/foo", "a/b/foo", true, true),
        ("**/foo", "a/foo/x", false, true),
        ("**/foo", "a/foox", false, false),
        ("**/foo/bar", "x/foo/bar", false, true),
        ("abc/**", "abc/x", false, true),
        ("abc/**", "abc/x/y", false, true),
        ("abc/**", "abc", true, false),
        ("abc/**", "xabc/y", false, false),
        ("a/**/b", "a/b", false, true),
        ("a/**/b", "a/x/b", false, true),
        ("a/**/b", "a/x/y/b", false, true),
        ("a/**/b", "a/bc", false, false),
        ("**", "anything/at/all", false, true),
        ("a*b*c", "aXbYbZc", false, true),
        ("a*b*c", "aXbYbZ", false, false),
        ("[!0-9]x", "ax", false, true),
        // negation, last match wins
        ("*.log\n!keep.log", "x/keep.log", false, false),
        ("!keep.log\n*.log", "keep.log", false, true),
        // cannot re-include below an excluded directory
        ("dir/\n!dir/keep", "dir/keep", false, true),
        ("dir\n!dir/keep", "dir/keep", false, true),
        ("dir/*\n!dir/keep", "dir/keep", false, false),
        // classes and ?
        ("[a-c].txt", "b.txt", false, true),
        ("[a-c].txt", "d.txt", false, false),
        ("[!a].txt", "a.txt", false, false),
        ("[!a].txt", "b.txt", false, true),
        ("[]x]", "]", false, true),
        ("[a-]", "-", false, true),
        ("[abc", "[abc", false, true),
        ("?.md", "a.md", false, true),
        ("?.md", "ab.md", false, false),
        ("?.md", ".md", false, false),
        ("a?b", "a/b", false, false),
        ("a*b", "a/b", false, false),
        // escapes, comments, spaces
        ("\\#file", "#file", false, true),
        ("#file", "#file", false, false),
        ("# comment\n\n   \n", "# comment", false, false),
        ("\\!bang", "!bang", false, true),
        ("foo   ", "foo", false, true),
        ("foo\\ ", "foo ", false, true),
        ("f\\*o", "f*o", false, true),
        ("*.tmp\r\n!a.tmp\r\n", "a.tmp", false, false),
        ("*.tmp\r\n!a.tmp\r\n", "b.tmp", false, true),
        // built-ins, not negatable
        ("", ".index", false, true),
        ("", ".s4lock", false, true),
        ("", ".s4lease", false, true),
        ("!.index\n!.s4lock", ".index", false, true),
        ("", "sub/.index", false, false),
        ("", ".s4tmp-x", false, true),
        ("", "a/b/.s4tmp-123", false, true),
        ("!.s4tmp-*", "a/.s4tmp-1", false, true),
        ("", "a/b.s4tmp-1", false, false),
        ("", ".s4lease.probe-1-2", false, true),
        ("", ".s4lease.intent-1-2", false, true),
        ("", ".s4lease.bak", false, false),
        // only the relative path is matched (S4 bug: sync root under a dir named build)
        ("build", "x/y", false, false),
        ("build", "build", false, true),
        ("build", "src/build/main.rs", false, true),
        ("", "", true, false),
        // unicode
        ("café/", "café/ü.txt", false, true),
        ("caf?", "café", false, true),
        ("[é]*", "éclair", false, true),
        ("日本/*.md", "日本/読む.md", false, true),
        ("日本/*.md", "日本語/読む.md", false, false),
    ];

    #[test]
    fn table() {
        for &(text, path, is_dir, want) in CASES {
            let rules = IgnoreRules::parse(text);
            assert_eq!(rules.is_ignored(path, is_dir), want, "syncignore {text:?} path {path:?} is_dir {is_dir}");
        }
    }

    #[test]
    fn dir_excluded_and_counts() {
        let r = IgnoreRules::parse("# c\n\nbuild/\n/target\n!target/keep\n/\n!\n");
        for d in ["build", "a/build", "target", "target/keep", "src", "sub/.index"] {
            assert_eq!(r.is_dir_excluded(d), r.is_ignored(d, true), "{d}");
        }
        assert!(r.is_dir_excluded("a/build") && !r.is_dir_excluded("src"));
        assert_eq!((r.len(), r.is_empty()), (3, false));
        assert!(IgnoreRules::parse("").is_empty() && IgnoreRules::default().is_empty());
    }
}
