#!/usr/bin/env bash
# Extracts the "before" tree for the before/after measurements into
# target/lockbox-before (read-only use; git archive, no worktree).
# Usage: bash perf/before-after/checkout.sh [commit]   (default: issue 16's start)
set -euo pipefail
commit="${1:-64069416770a85be0ebf09d6d8ede453acd3983d}"
root="$(git rev-parse --show-toplevel)"
dest="$root/target/lockbox-before"
rm -rf "$dest"
mkdir -p "$dest"
git -C "$root" archive "$commit" | tar -x -C "$dest"
# Two path packages may not share a name and version in one lockfile: the
# before build is renamed (its library keeps the name `lockbox`).
sed -i 's/^name = "lockbox-envelope"$/name = "lockbox-envelope-before"/; s/package = "lockbox-envelope"/package = "lockbox-envelope-before"/' "$dest/Cargo.toml"
echo "$commit" > "$dest/.commit"
echo "extracted $commit into $dest"
