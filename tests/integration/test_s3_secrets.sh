#!/usr/bin/env bash
# Secrets hygiene (issue 15, item 5): every command, run against the RGW
# pair with real credentials at the most verbose log level, and again with a
# wrong secret (so that the error paths run: signature mismatch, retries),
# never shows the secret access key — not in stdout, stderr, JSON, the
# drill's reports, the metrics file, nor in any file it leaves in the state
# directory — and never in a process's command line. A secret file that is
# group- or world-readable is refused, naming the file.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3

state=$TEST_TMP/state
out=$TEST_TMP/out
mkdir -p "$out"
prefix="secrets-$$/"
sv=$(mk_subvol secrets-part)
"$GENDATA" "$sv" --json-bytes 2M --json-file-size 1M --small-files 50 --dirs 4 >/dev/null
target=$TEST_TMP/restored
cleanup() {
	btrfs subvolume delete "$TEST_BTRFS"/.snapship-* >/dev/null 2>&1 || true
}
trap cleanup EXIT

# conf FILE SECRET_FILE
conf() {
	cat >"$1" <<EOF
[agent]
state_dir = $state
host = sechost
metrics_file = $state/metrics.prom

[partition sp]
path = $sv

[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $2
primary = yes

[region west]
store = s3
endpoint = $RGW_WEST_ENDPOINT
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $2
replication = server
EOF
}
good=$TEST_TMP/good.conf
conf "$good" "$RGW_SECRET_ACCESS_KEY_FILE"
secret=$(cat "$RGW_SECRET_ACCESS_KEY_FILE")
[ "${#secret}" -ge 16 ] || fail "the harness's secret is too short to grep for: '${#secret}' bytes"
wrong_secret="WrongSecretMarker0123456789abcdefXYZ"
wrong_file=$TEST_TMP/wrong.key
printf '%s\n' "$wrong_secret" >"$wrong_file"
chmod 600 "$wrong_file"
bad=$TEST_TMP/bad.conf
conf "$bad" "$wrong_file"

# run NAME CONF ARGS...: one command at -v, output kept (status ignored:
# the wrong-secret runs fail on purpose); while it runs, its command line
# is sampled
n=0
run() {
	local name=$1 cf=$2 pid
	shift 2
	n=$((n + 1))
	SNAPSHIP_S3_MAX_ATTEMPTS=2 "$SNAPSHIP" --config "$cf" -v "$@" \
		>"$out/$n-$name.out" 2>"$out/$n-$name.err" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		{ tr '\0' ' ' <"/proc/$pid/cmdline" >>"$out/cmdlines"; } 2>/dev/null || true
		echo >>"$out/cmdlines"
		sleep 0.05
	done
	wait "$pid" && echo 0 >"$out/$n-$name.rc" || echo $? >"$out/$n-$name.rc"
}

for cf in "$good" "$bad"; do
	tag=$(basename "$cf" .conf)
	run "$tag-check" "$cf" config check
	run "$tag-backup" "$cf" backup sp
	run "$tag-backup-json" "$cf" backup sp --json
	run "$tag-list" "$cf" list
	run "$tag-list-json" "$cf" list --json
	run "$tag-ls" "$cf" ls sp
	run "$tag-restore" "$cf" restore sp --to "$target-$tag"
	run "$tag-verify" "$cf" verify --deep
	run "$tag-repair" "$cf" repair
	run "$tag-status" "$cf" status --json
	run "$tag-prune" "$cf" prune --dry-run --json
	run "$tag-clean" "$cf" clean
	run "$tag-hosts" "$cf" hosts --json
	run "$tag-drill" "$cf" drill --report-json "$out/$tag-drill.json" \
		--report-junit "$out/$tag-drill.xml"
	run "$tag-agent" "$cf" agent --once
done

# the good runs did their work (else the test proves little)
[ "$(cat "$out"/*-good-backup.rc)" = 0 ] || fail "the backup with the right secret failed: $(cat "$out"/*-good-backup.err)"
[ -n "$(ls -A "$target-good" 2>/dev/null)" ] || fail "the restore with the right secret restored nothing: $(cat "$out"/*-good-restore.err "$out"/*-good-backup.err)"
[ "$(cat "$out"/*-bad-backup.rc)" != 0 ] || fail "a backup with a wrong secret succeeded"
grep -qi "signature\|credential\|secret\|denied\|403" "$out"/*-bad-backup.err ||
	fail "the wrong-secret backup's error does not say what is wrong: $(cat "$out"/*-bad-backup.err)"

# no secret anywhere: outputs, reports, command lines, the state dir
for s in "$secret" "$wrong_secret"; do
	hits=$(grep -rlF -- "$s" "$out" "$state" 2>/dev/null || true)
	[ -z "$hits" ] || fail "a secret appears in: $hits"
done
head -n3 "$out"/*-bad-backup.err
echo "checked $n runs: no secret in their output, reports, command lines or the state dir"

# a secret file readable by the group or the world is refused, naming it
loose=$TEST_TMP/loose.key
printf '%s\n' "$secret" >"$loose"
chmod 640 "$loose"
conf "$TEST_TMP/loose.conf" "$loose"
if "$SNAPSHIP" --config "$TEST_TMP/loose.conf" config check >"$out/loose.out" 2>&1; then
	fail "config check accepted a group-readable secret file"
fi
grep -qF "$loose" "$out/loose.out" || fail "the refusal does not name the file: $(cat "$out/loose.out")"
! grep -qF -- "$secret" "$out/loose.out" || fail "the refusal shows the secret"
echo "a group-readable secret file is refused: $(head -n1 "$out/loose.out")"
