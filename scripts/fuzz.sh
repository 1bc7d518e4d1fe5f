#!/usr/bin/env bash
# fuzz.sh FUZZTIME PKG...: runs every fuzz target of the packages for
# FUZZTIME each. A real finding (a failing input written to testdata/fuzz,
# a panic, a failed check) fails at once. A bare "context deadline exceeded"
# with no failing input is Go 1.26's fuzzing coordinator racing its own
# -fuzztime deadline (go.dev/issue/75804, fixed in Go 1.27), not a finding:
# that target is run once more, and fails if it happens again.
set -euo pipefail
fuzztime=$1
shift
go=${GO:-go}

run() { # pkg target
	"$go" test -run='^$' -fuzz="^$2\$" -fuzztime="$fuzztime" "$1" 2>&1
}

deadline_race() { # output
	grep -q 'context deadline exceeded' <<<"$1" && ! grep -q -e 'Failing input written' -e 'panic:' <<<"$1"
}

for pkg in $("$go" list "$@"); do
	for f in $("$go" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz $pkg $f"
		if ! out=$(run "$pkg" "$f"); then
			if ! deadline_race "$out"; then
				echo "$out"
				exit 1
			fi
			echo "fuzz $pkg $f: the fuzzing engine missed its own deadline (go.dev/issue/75804); running it again"
			out=$(run "$pkg" "$f") || { echo "$out"; exit 1; }
		fi
		echo "$out" | tail -n 1
	done
done
