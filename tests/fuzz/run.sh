#!/usr/bin/env bash
# Run the libFuzzer targets:   bash tests/fuzz/run.sh [FUZZ_BUILD_DIR [TARGET...]]
#
# FUZZ_BUILD_DIR defaults to build-fuzz (make fuzz-build); TARGETs are names
# like fuzz_index or index (default: every tests/fuzz/fuzz_*.c).  For each:
#   1. every input in tests/fuzz/regress/<target>/ (inputs that once
#      crashed) is replayed: each must run clean;
#   2. the target fuzzes for FUZZ_SECONDS (60; 0 = only replay the seeds)
#      from the seeds in tests/fuzz/corpus/<target>/ plus a working corpus
#      in FUZZ_CORPUS/<target> (default FUZZ_BUILD_DIR/corpus, kept between
#      runs; new inputs go there, never into the committed seeds);
#   3. a crash, leak, sanitizer report, timeout (FUZZ_TIMEOUT, 25 s for one
#      input) or out-of-memory (FUZZ_RSS_MB, 2048) fails the target; the
#      input is kept in FUZZ_ARTIFACTS/<target>/ (default
#      FUZZ_BUILD_DIR/artifacts) and the report names it.
# One line per target: ok/FAIL/skip, executions, CPU seconds, coverage.
# Scratch files (the extraction jail) go to FUZZ_SCRATCH, else TEST_TMP,
# else a mktemp -d removed at the end; never the working directory /.
# Exit 0 when every target passed, 77 when none could run (the reason in a
# "SKIP: ..." line), 1 otherwise.
set -u
set -o pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
fb=${1:-$src/build-fuzz}
[ $# -gt 0 ] && shift
seconds=${FUZZ_SECONDS:-60}
per_input=${FUZZ_TIMEOUT:-25}
rss_mb=${FUZZ_RSS_MB:-2048}

targets=()
if [ $# -gt 0 ]; then
	for t in "$@"; do targets+=("fuzz_${t#fuzz_}"); done
else
	for f in "$src"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi

if ! [ -d "$fb" ]; then
	if ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
		echo "SKIP: ${FUZZ_CC:-clang} is not installed (apt-get install clang libclang-rt-dev; make fuzz-build)"
	else
		echo "SKIP: $fb does not exist (make fuzz-build)"
	fi
	exit 77
fi
fb=$(cd "$fb" && pwd -P)
corpora=${FUZZ_CORPUS:-$fb/corpus}
artifacts=${FUZZ_ARTIFACTS:-$fb/artifacts}

own_scratch=""
scratch=${FUZZ_SCRATCH:-${TEST_TMP:-}}
if [ -z "$scratch" ]; then
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/snapship-fuzz.XXXXXX") || exit 2
	own_scratch=$scratch
fi
scratch=$(cd "$scratch" && pwd -P)
[ "$scratch" != / ] || { echo "run.sh: refusing to use / as the scratch directory" >&2; exit 2; }
trap '[ -n "$own_scratch" ] && rm -rf --one-file-system "$own_scratch"' EXIT

# CPU seconds (user + system) of the finished children of this shell
children_cpu() {
	times >"$scratch/.times"
	tail -n 1 "$scratch/.times" | awk '{
		t = 0
		for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] + 0 }
		printf "%.2f", t }'
}

passed=0 failed=0 skipped=0 why=""
for t in "${targets[@]}"; do
	name=${t#fuzz_}
	bin=$fb/$t
	if ! [ -x "$bin" ]; then
		if command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
			why="$bin is not built: make fuzz-build"
		else
			why="${FUZZ_CC:-clang} is not installed (apt-get install clang libclang-rt-dev)"
		fi
		echo "skip $t ($why)"
		skipped=$((skipped + 1))
		continue
	fi
	work=$corpora/$name art=$artifacts/$name run=$scratch/$name
	mkdir -p "$work" "$art" "$run"
	log=$run/fuzz.log
	opts=(-error_exitcode=1 -timeout="$per_input" -rss_limit_mb="$rss_mb" -artifact_prefix="$art/"
		-print_final_stats=1)
	[ -f "$src/tests/fuzz/$name.dict" ] && opts+=(-dict="$src/tests/fuzz/$name.dict")
	export FUZZ_SCRATCH=$run

	# 1. the inputs that once crashed
	regress=()
	if [ -d "$src/tests/fuzz/regress/$name" ]; then
		while IFS= read -r f; do regress+=("$f"); done \
			< <(find "$src/tests/fuzz/regress/$name" -type f ! -name '*.md' | LC_ALL=C sort)
	fi
	bad=""
	for f in "${regress[@]}"; do
		(cd "$run" && exec "$bin" "${opts[@]}" "$f") >"$log" 2>&1
		rc=$?
		[ $rc -eq 77 ] && break
		if [ $rc -ne 0 ]; then
			bad=$f
			break
		fi
	done
	if [ -n "$bad" ]; then
		echo "FAIL $t: regression input ${bad#"$src"/} fails again:"
		grep -E '^(==[0-9]+== ?ERROR|SUMMARY|fuzz_[a-z0-9_]+: |.*runtime error)|^ +#[0-9]+ .* in [^ ]+ [^ ]+\.c:[0-9]+' "$log" | head -n 12 | sed 's/^/     | /'
		failed=$((failed + 1))
		continue
	fi

	# 2. fuzz
	if [ "$seconds" -gt 0 ]; then
		fopts=(-max_total_time="$seconds")
	else
		fopts=(-runs=0)
	fi
	children_cpu >"$run/cpu0"
	(cd "$run" && exec "$bin" "${opts[@]}" "${fopts[@]}" "$work" "$src/tests/fuzz/corpus/$name") \
		>"$log" 2>&1
	rc=$?
	children_cpu >"$run/cpu1"
	cpu=$(awk 'NR == 1 { a = $1 } NR == 2 { printf "%.0f", $1 - a }' "$run/cpu0" "$run/cpu1")
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
	cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)\/.*/cov \1 ft \2 corpus \3/p' <<<"$last")
	if [ $rc -eq 77 ]; then
		why=$(grep -m1 '^SKIP' "$log" | sed 's/^SKIP: *//')
		echo "skip $t ($why)"
		skipped=$((skipped + 1))
	elif [ $rc -eq 0 ]; then
		echo "ok   $t: ${execs:-?} executions in ${seconds} s, ${cpu} s CPU, ${cov:-no coverage line}"
		passed=$((passed + 1))
	else
		crash=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$log" | tail -n 1)
		echo "FAIL $t (exit $rc): ${execs:-?} executions, ${cov:-?}; input kept in ${crash:-$art}"
		grep -E '^(==[0-9]+== ?ERROR|SUMMARY|fuzz_[a-z0-9_]+: |.*runtime error)|^ +#[0-9]+ .* in [^ ]+ [^ ]+\.c:[0-9]+' "$log" | head -n 12 | sed 's/^/     | /'
		cp "$log" "$art/last-failure.log" 2>/dev/null
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed, $skipped skipped"
if [ $failed -gt 0 ]; then
	exit 1
elif [ $passed -eq 0 ] && [ $skipped -gt 0 ]; then
	echo "SKIP: $why"
	exit 77
fi
exit 0
