//! Three-way merge of two edited versions of a secrets file (`SECRETS.md`
//! §8), usable as a git merge driver: values are compared decrypted, so a
//! merge never means hand-editing ciphertext.
//!
//! - **Keys** (the key envelope and data key): if one side changed them
//!   (update keys or rotate) and the other did not, the changed side's are
//!   taken; if both changed them differently, [`SecretsError::KeysConflict`].
//! - **Dotenv**: a line-based three-way merge (diff3) of the lines, a value
//!   line standing for its name and decrypted value: edits to different
//!   lines combine; the same line changed differently on both sides is a
//!   conflict.
//! - **JSON**: object members merge by key, recursively; arrays and scalar
//!   values are changed as a whole on one side, or conflict.
//!
//! A conflict keeps *our* version of what conflicts and is reported by
//! name; the merged file is complete and valid (resolve with `set`).
//! Values taken unchanged keep their ciphertext when the merged file has
//! that side's data key; otherwise they are re-encrypted under it.

use alloc::string::String;
use alloc::vec::Vec;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::doc::{self, Body, Form, Line, Node, Seg};
use super::edit;
use super::error::SecretsError;
use super::keys::FileKeys;
use super::{UnlockedFile, Verification};
use crate::error::Error;
use crate::keys::os_random;

/// The result of [`merge`]: the merged file and the names that conflicted
/// (empty: a clean merge).
#[derive(Debug)]
pub struct Merged {
    /// The merged file, complete and authenticated once written; where the
    /// sides conflicted it holds *ours*.
    pub file: UnlockedFile,
    /// The names (dotenv names, JSON Pointers) that both sides changed
    /// differently.
    pub conflicts: Vec<String>,
}

/// Merges `ours` and `theirs`, both edited from `base` (all three unlocked,
/// of one form), as `SECRETS.md` §8 describes: keys from the side that
/// changed them, dotenv bodies line by line (diff3), JSON members by key.
pub fn merge(base: &UnlockedFile, ours: &UnlockedFile, theirs: &UnlockedFile) -> Result<Merged, Error> {
    let form = ours.parsed.form;
    if base.parsed.form != form || theirs.parsed.form != form {
        return Err(Error::invalid_argument("merging secrets files of different forms"));
    }
    // Whose keys the merged file has.
    let take_theirs = ours.parsed.header == base.parsed.header && theirs.parsed.header != base.parsed.header;
    if !take_theirs && theirs.parsed.header != base.parsed.header && theirs.parsed.header != ours.parsed.header {
        return Err(SecretsError::KeysConflict.into());
    }
    let keyed = if take_theirs { theirs } else { ours };
    let out_keys = FileKeys::derive(keyed.keys.file_key(), *keyed.keys.file_id());
    let mut m = Merger {
        form,
        digest_key: Zeroizing::new([0u8; 32]),
        out: &out_keys,
        conflicts: Vec::new(),
    };
    os_random(m.digest_key.as_mut_slice())?;
    let body = match (&base.parsed.body, &ours.parsed.body, &theirs.parsed.body) {
        (Body::Dotenv(b), Body::Dotenv(o), Body::Dotenv(t)) => {
            Body::Dotenv(m.dotenv((b, &base.keys), (o, &ours.keys), (t, &theirs.keys))?)
        }
        (Body::Json(b), Body::Json(o), Body::Json(t)) => {
            let mut path = Vec::new();
            Body::Json(
                m.object(
                    &mut path,
                    Some((b, &base.keys)),
                    Some((o, &ours.keys)),
                    Some((t, &theirs.keys)),
                )?
                .unwrap_or_default(),
            )
        }
        _ => return Err(Error::invalid_argument("merging secrets files of different forms")),
    };
    let conflicts = m.conflicts;
    let file = UnlockedFile {
        parsed: doc::Parsed {
            form,
            body,
            header: keyed.parsed.header.clone(),
            mac: [0; super::keys::MAC_LEN],
        },
        keys: out_keys,
        origin: ours.origin.clone(),
        verification: None::<Verification>,
    };
    Ok(Merged { file, conflicts })
}

type Side<'a, T> = (&'a T, &'a FileKeys);

/// An object's members on one side of a merge.
type Members<'a> = Side<'a, Vec<(String, Node)>>;

/// A chunk's value lines with their names and tokens.
type Named<'l> = Vec<(&'l str, &'l Line, &'l Token)>;

/// The value lines of a chunk (`None` if it holds any other line).
fn named<'l>((lines, tokens, r): (&'l [Line], &'l [Token], &core::ops::Range<usize>)) -> Option<Named<'l>> {
    let ls = lines.get(r.clone())?;
    let ts = tokens.get(r.clone())?;
    ls.iter()
        .zip(ts)
        .map(|(l, t)| match l {
            Line::Entry { name, .. } => Some((name.as_str(), l, t)),
            _ => None,
        })
        .collect()
}

fn find_named<'l>(side: &Named<'l>, n: &str) -> Option<(&'l Line, &'l Token)> {
    side.iter().find(|(x, _, _)| *x == n).map(|&(_, l, t)| (l, t))
}

/// What a chunk of a dotenv merge takes.
enum Pick {
    Ours(core::ops::Range<usize>),
    Theirs(core::ops::Range<usize>),
    /// Lines merged name by name, each with whether it is ours.
    Lines(Vec<(Line, bool)>),
}

struct Merger<'k> {
    form: Form,
    /// Keys the digests that stand for decrypted values (per merge, random).
    digest_key: Zeroizing<[u8; 32]>,
    out: &'k FileKeys,
    conflicts: Vec<String>,
}

/// A line of a dotenv body as the merge compares it: comments and blank
/// lines by their text, values by name and a keyed digest of the value.
#[derive(Clone, PartialEq, Eq)]
struct Token([u8; 32]);

impl Merger<'_> {
    fn mac(&self) -> Hmac<Sha256> {
        super::keys::hmac_sha256(&self.digest_key)
    }

    fn leaf_digest(&self, m: &mut Hmac<Sha256>, keys: &FileKeys, path: &[Seg], v: &doc::Sealed) -> Result<(), Error> {
        let p = edit::open(keys, self.form, path, v)?;
        m.update(b"v");
        m.update(&[p.kind]);
        m.update(&u64::try_from(p.data.len()).unwrap_or(u64::MAX).to_be_bytes());
        m.update(&p.data);
        Ok(())
    }

    fn line_token(&self, l: &Line, keys: &FileKeys) -> Result<Token, Error> {
        let mut m = self.mac();
        match l {
            Line::Blank(s) | Line::Comment(s) => {
                m.update(b"t");
                m.update(s.as_bytes());
            }
            Line::Entry { name, value } => {
                m.update(b"e");
                m.update(&u64::try_from(name.len()).unwrap_or(u64::MAX).to_be_bytes());
                m.update(name.as_bytes());
                self.leaf_digest(&mut m, keys, &[Seg::Key(name.clone())], value)?;
            }
        }
        Ok(Token(m.finalize().into_bytes().into()))
    }

    fn node_digest(&self, m: &mut Hmac<Sha256>, keys: &FileKeys, path: &mut Vec<Seg>, n: &Node) -> Result<(), Error> {
        match n {
            Node::Leaf(v) => self.leaf_digest(m, keys, path, v),
            Node::Object(members) => {
                m.update(b"o");
                m.update(&u64::try_from(members.len()).unwrap_or(u64::MAX).to_be_bytes());
                for (k, v) in members {
                    m.update(&u64::try_from(k.len()).unwrap_or(u64::MAX).to_be_bytes());
                    m.update(k.as_bytes());
                    path.push(Seg::Key(k.clone()));
                    let r = self.node_digest(m, keys, path, v);
                    path.pop();
                    r?;
                }
                Ok(())
            }
            Node::Array(items) => {
                m.update(b"a");
                m.update(&u64::try_from(items.len()).unwrap_or(u64::MAX).to_be_bytes());
                for (i, v) in items.iter().enumerate() {
                    path.push(Seg::Index(u32::try_from(i).unwrap_or(u32::MAX)));
                    let r = self.node_digest(m, keys, path, v);
                    path.pop();
                    r?;
                }
                Ok(())
            }
        }
    }

    /// The digest of an optional node (absent is its own value).
    fn digest(&self, path: &mut Vec<Seg>, side: Option<Side<'_, Node>>) -> Result<Token, Error> {
        let mut m = self.mac();
        match side {
            None => m.update(b"-"),
            Some((n, keys)) => self.node_digest(&mut m, keys, path, n)?,
        }
        Ok(Token(m.finalize().into_bytes().into()))
    }

    /// A node taken from a side, re-encrypted under the merged file's keys
    /// unless it has them already.
    fn take(&self, path: &[Seg], (n, keys): Side<'_, Node>) -> Result<Node, Error> {
        let mut n = n.clone();
        if !keys.same_key(self.out) {
            edit::reseal_node(keys, self.out, &mut n, path, path)?;
        }
        Ok(n)
    }

    fn take_line(&self, (l, keys): Side<'_, Line>) -> Result<Line, Error> {
        match l {
            Line::Entry { name, value } if !keys.same_key(self.out) => {
                let path = [Seg::Key(name.clone())];
                let p = edit::open(keys, self.form, &path, value)?;
                Ok(Line::Entry {
                    name: name.clone(),
                    value: edit::seal(self.out, self.form, &path, p.kind, &p.data)?,
                })
            }
            other => Ok(other.clone()),
        }
    }

    fn dotenv(
        &mut self,
        base: Side<'_, Vec<Line>>,
        ours: Side<'_, Vec<Line>>,
        theirs: Side<'_, Vec<Line>>,
    ) -> Result<Vec<Line>, Error> {
        let tokens = |(lines, keys): Side<'_, Vec<Line>>| -> Result<Vec<Token>, Error> {
            lines.iter().map(|l| self.line_token(l, keys)).collect()
        };
        let (o, a, b) = (tokens(base)?, tokens(ours)?, tokens(theirs)?);
        // Which side's lines each chunk takes.
        let mut picks: Vec<Pick> = Vec::new();
        for chunk in diff3(&o, &a, &b)? {
            let (ro, ra, rb) = (chunk.o, chunk.a, chunk.b);
            let so = o.get(ro.clone()).unwrap_or_default();
            let sa = a.get(ra.clone()).unwrap_or_default();
            let sb = b.get(rb.clone()).unwrap_or_default();
            if chunk.stable || sb == so || sa == sb {
                picks.push(Pick::Ours(ra));
            } else if sa == so {
                picks.push(Pick::Theirs(rb));
            } else if let Some(lines) = self.by_name((base.0, &o, &ro), (ours.0, &a, &ra), (theirs.0, &b, &rb)) {
                // Only value lines, changed at different names (adjacent
                // lines, which a line merge could not tell apart).
                picks.push(Pick::Lines(lines));
            } else {
                let before = self.conflicts.len();
                for (lines, r) in [(base.0, &ro), (ours.0, &ra), (theirs.0, &rb)] {
                    for l in lines.get(r.clone()).unwrap_or_default() {
                        if let Line::Entry { name, .. } = l
                            && !self.conflicts.contains(name)
                        {
                            self.conflicts.push(name.clone());
                        }
                    }
                }
                if self.conflicts.len() == before {
                    self.conflicts.push(String::from("(comments)"));
                }
                picks.push(Pick::Ours(ra));
            }
        }
        let mut out: Vec<Line> = Vec::new();
        for pick in picks {
            let (from, r) = match pick {
                Pick::Ours(r) => (ours, r),
                Pick::Theirs(r) => (theirs, r),
                Pick::Lines(chosen) => {
                    for (l, from_ours) in chosen {
                        out.push(self.take_line((&l, if from_ours { ours.1 } else { theirs.1 }))?);
                    }
                    continue;
                }
            };
            for l in from.0.get(r).unwrap_or_default() {
                out.push(self.take_line((l, from.1))?);
            }
        }
        // A name both sides added at different places: keep the first.
        let mut seen: Vec<String> = Vec::new();
        let mut dups: Vec<String> = Vec::new();
        out.retain(|l| match l {
            Line::Entry { name, .. } if seen.contains(name) => {
                dups.push(name.clone());
                false
            }
            Line::Entry { name, .. } => {
                seen.push(name.clone());
                true
            }
            _ => true,
        });
        for d in dups {
            if !self.conflicts.contains(&d) {
                self.conflicts.push(d);
            }
        }
        Ok(out)
    }

    /// A chunk that only holds value lines on every side, merged name by
    /// name; `None` if it holds other lines or a name changed differently
    /// on both sides. The chosen lines, each with whether it is ours.
    fn by_name(
        &self,
        base: (&[Line], &[Token], &core::ops::Range<usize>),
        ours: (&[Line], &[Token], &core::ops::Range<usize>),
        theirs: (&[Line], &[Token], &core::ops::Range<usize>),
    ) -> Option<Vec<(Line, bool)>> {
        let (b, o, t) = (named(base)?, named(ours)?, named(theirs)?);
        let mut names: Vec<&str> = o.iter().map(|(n, _, _)| *n).collect();
        for (n, _, _) in &t {
            if !names.contains(n) && find_named(&b, n).is_none() {
                names.push(n);
            }
        }
        let mut out = Vec::new();
        for n in names {
            let (bb, oo, tt) = (find_named(&b, n), find_named(&o, n), find_named(&t, n));
            let tok = |x: Option<(&Line, &Token)>| x.map(|(_, t)| t.clone());
            let choice = if tok(oo) == tok(tt) || tok(tt) == tok(bb) {
                oo.map(|(l, _)| (l.clone(), true))
            } else if tok(oo) == tok(bb) {
                tt.map(|(l, _)| (l.clone(), false))
            } else {
                return None;
            };
            out.extend(choice);
        }
        Some(out)
    }

    /// Merges the members of an object present (or absent) on each side;
    /// `None`: absent from the merged file.
    fn object(
        &mut self,
        path: &mut Vec<Seg>,
        base: Option<Side<'_, Vec<(String, Node)>>>,
        ours: Option<Side<'_, Vec<(String, Node)>>>,
        theirs: Option<Side<'_, Vec<(String, Node)>>>,
    ) -> Result<Option<Vec<(String, Node)>>, Error> {
        let Some(o) = ours else { return Ok(None) };
        // Ours' order, then theirs' new keys in theirs' order.
        let mut keys: Vec<&String> = o.0.iter().map(|(k, _)| k).collect();
        if let Some(t) = theirs {
            for (k, _) in t.0 {
                if !keys.contains(&k) && !base.is_some_and(|b| b.0.iter().any(|(x, _)| x == k)) {
                    keys.push(k);
                }
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            path.push(Seg::Key(k.clone()));
            let r = self.member(
                path,
                Self::member_of(base, k),
                Self::member_of(ours, k),
                Self::member_of(theirs, k),
            );
            path.pop();
            if let Some(n) = r? {
                out.push((k.clone(), n));
            }
        }
        Ok(Some(out))
    }

    fn member_of<'s>(side: Option<Side<'s, Vec<(String, Node)>>>, k: &str) -> Option<Side<'s, Node>> {
        side.and_then(|(m, keys)| m.iter().find(|(x, _)| x == k).map(|(_, v)| (v, keys)))
    }

    fn as_object(side: Option<Side<'_, Node>>) -> Option<Option<Members<'_>>> {
        match side {
            None => Some(None),
            Some((Node::Object(m), k)) => Some(Some((m, k))),
            _ => None,
        }
    }

    fn member(
        &mut self,
        path: &mut Vec<Seg>,
        base: Option<Side<'_, Node>>,
        ours: Option<Side<'_, Node>>,
        theirs: Option<Side<'_, Node>>,
    ) -> Result<Option<Node>, Error> {
        let (db, d_o, dt) = (
            self.digest(path, base)?,
            self.digest(path, ours)?,
            self.digest(path, theirs)?,
        );
        let pick = |this: &Self, side: Option<Side<'_, Node>>| side.map(|s| this.take(path, s)).transpose();
        if d_o == dt || dt == db {
            return pick(self, ours);
        }
        if d_o == db {
            return pick(self, theirs);
        }
        // Both changed: objects on every side that has it merge member by member.
        if let (Some(b), Some(Some(o)), Some(Some(t))) =
            (Self::as_object(base), Self::as_object(ours), Self::as_object(theirs))
        {
            return Ok(self.object(path, b, Some(o), Some(t))?.map(Node::Object));
        }
        self.conflicts.push(doc::path_name(Form::Json, path));
        pick(self, ours)
    }
}

/// One chunk of a three-way comparison: lines of base (`o`), ours (`a`)
/// and theirs (`b`); stable chunks are equal on all three.
struct Chunk {
    stable: bool,
    o: core::ops::Range<usize>,
    a: core::ops::Range<usize>,
    b: core::ops::Range<usize>,
}

/// Largest product of two sequence lengths compared (the table of the
/// longest common subsequence, after trimming equal ends).
const MAX_CELLS: usize = 1 << 24;

/// For each item of `x`, the index of the item of `y` it is matched with in
/// a longest common subsequence.
fn matches(x: &[Token], y: &[Token]) -> Result<Vec<Option<usize>>, Error> {
    let mut out = alloc::vec![None; x.len()];
    let mut pre = 0usize;
    while pre < x.len() && pre < y.len() && x.get(pre) == y.get(pre) {
        if let Some(o) = out.get_mut(pre) {
            *o = Some(pre);
        }
        pre = pre.saturating_add(1);
    }
    let mut suf = 0usize;
    while suf < x.len().saturating_sub(pre)
        && suf < y.len().saturating_sub(pre)
        && x.get(x.len().saturating_sub(suf).saturating_sub(1)) == y.get(y.len().saturating_sub(suf).saturating_sub(1))
    {
        suf = suf.saturating_add(1);
        if let Some(o) = out.get_mut(x.len().saturating_sub(suf)) {
            *o = Some(y.len().saturating_sub(suf));
        }
    }
    let xs = x.get(pre..x.len().saturating_sub(suf)).unwrap_or_default();
    let ys = y.get(pre..y.len().saturating_sub(suf)).unwrap_or_default();
    let (n, m) = (xs.len(), ys.len());
    if n.saturating_mul(m) > MAX_CELLS {
        return Err(Error::invalid_argument("secrets files too different to merge"));
    }
    // lcs[i][j]: the LCS length of xs[i..] and ys[j..].
    let w = m.saturating_add(1);
    let mut lcs = alloc::vec![0u32; n.saturating_add(1).saturating_mul(w)];
    let at = |i: usize, j: usize| i.saturating_mul(w).saturating_add(j);
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if xs.get(i) == ys.get(j) {
                lcs.get(at(i.saturating_add(1), j.saturating_add(1)))
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1)
            } else {
                let down = lcs.get(at(i.saturating_add(1), j)).copied().unwrap_or(0);
                let right = lcs.get(at(i, j.saturating_add(1))).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(c) = lcs.get_mut(at(i, j)) {
                *c = v;
            }
        }
    }
    let (mut i, mut j) = (0usize, 0usize);
    while i < n && j < m {
        if xs.get(i) == ys.get(j) {
            if let Some(o) = out.get_mut(pre.saturating_add(i)) {
                *o = Some(pre.saturating_add(j));
            }
            i = i.saturating_add(1);
            j = j.saturating_add(1);
        } else if lcs.get(at(i.saturating_add(1), j)) >= lcs.get(at(i, j.saturating_add(1))) {
            i = i.saturating_add(1);
        } else {
            j = j.saturating_add(1);
        }
    }
    Ok(out)
}

/// diff3 (Khanna, Kunal and Pierce, "A formal investigation of diff3"):
/// the chunks of `a` and `b` against their common ancestor `o`.
fn diff3(o: &[Token], a: &[Token], b: &[Token]) -> Result<Vec<Chunk>, Error> {
    let (ma, mb) = (matches(o, a)?, matches(o, b)?);
    let (mut lo, mut la, mut lb) = (0usize, 0usize, 0usize);
    let mut out = Vec::new();
    loop {
        let mut i = 0usize;
        while ma.get(lo.saturating_add(i)).copied().flatten() == Some(la.saturating_add(i))
            && mb.get(lo.saturating_add(i)).copied().flatten() == Some(lb.saturating_add(i))
        {
            i = i.saturating_add(1);
        }
        if i > 0 {
            out.push(Chunk {
                stable: true,
                o: lo..lo.saturating_add(i),
                a: la..la.saturating_add(i),
                b: lb..lb.saturating_add(i),
            });
            (lo, la, lb) = (lo.saturating_add(i), la.saturating_add(i), lb.saturating_add(i));
            continue;
        }
        // The next base line matched on both sides, after the current positions.
        let next = (lo..o.len()).find_map(|j| match (ma.get(j).copied().flatten(), mb.get(j).copied().flatten()) {
            (Some(x), Some(y)) if x >= la && y >= lb => Some((j, x, y)),
            _ => None,
        });
        match next {
            Some((j, x, y)) => {
                out.push(Chunk {
                    stable: false,
                    o: lo..j,
                    a: la..x,
                    b: lb..y,
                });
                (lo, la, lb) = (j, x, y);
            }
            None => {
                if lo < o.len() || la < a.len() || lb < b.len() {
                    out.push(Chunk {
                        stable: false,
                        o: lo..o.len(),
                        a: la..a.len(),
                        b: lb..b.len(),
                    });
                }
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<Token> {
        s.bytes().map(|b| Token([b; 32])).collect()
    }

    fn merged(o: &str, a: &str, b: &str) -> Option<String> {
        let (o, a, b) = (t(o), t(a), t(b));
        let mut out = String::new();
        for c in diff3(&o, &a, &b).unwrap() {
            let (so, sa, sb) = (&o[c.o.clone()], &a[c.a.clone()], &b[c.b.clone()]);
            let pick = if c.stable || sa == so {
                sb
            } else if sb == so || sa == sb {
                sa
            } else {
                return None;
            };
            out.extend(pick.iter().map(|t| char::from(t.0[0])));
        }
        Some(out)
    }

    #[test]
    fn diff3_merges_separate_edits_and_flags_overlaps() {
        assert_eq!(merged("abcde", "aXcde", "abcdY").as_deref(), Some("aXcdY"));
        assert_eq!(merged("abc", "abc", "abXc").as_deref(), Some("abXc"));
        assert_eq!(merged("abc", "ac", "abc").as_deref(), Some("ac"));
        assert_eq!(merged("abc", "aXc", "aXc").as_deref(), Some("aXc"));
        assert_eq!(merged("abc", "aXc", "aYc"), None);
        assert_eq!(merged("", "a", "").as_deref(), Some("a"));
    }
}
