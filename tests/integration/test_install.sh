#!/usr/bin/env bash
# make install / make uninstall (issue 12 item 6):
#  - DESTDIR: the binary in sbin, the agent's supervisor snapship-agentd in
#    libexec/snapship, snapship(8) and snapship.conf(5) in the
#    man dirs, the commented sample config in /etc/snapship (parsed by
#    snapship), the unit in lib/systemd/system with ExecStart at PREFIX;
#    a second install keeps an edited config and puts the sample next to
#    it as snapship.conf.sample; uninstall removes what install put there
#    and keeps the edited config;
#  - the installed unit passes systemd-analyze verify (installed under a
#    PREFIX in the scratch dir, so that its ExecStart exists), with
#    Type=notify, WatchdogSec, Restart=on-failure, IOSchedulingClass=idle.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_cmd make install cmp
need_pkg systemd-analyze systemd

B=$(dirname "$SNAPSHIP")
M=(make -s -C "$SRC_DIR" "B=$B")
R=$TEST_TMP/root
"${M[@]}" install "DESTDIR=$R" >"$TEST_TMP/install.out" 2>&1 ||
	{ cat "$TEST_TMP/install.out"; fail "make install DESTDIR=$R failed"; }
for f in usr/local/sbin/snapship usr/local/share/man/man8/snapship.8 \
	usr/local/share/man/man5/snapship.conf.5 etc/snapship/snapship.conf \
	usr/local/lib/systemd/system/snapship.service \
	usr/local/libexec/snapship/snapship-agentd; do
	[ -f "$R/$f" ] || fail "make install did not install /$f: $(cd "$R" && find . -type f)"
done
[ -x "$R/usr/local/sbin/snapship" ] || fail "the installed binary is not executable"
[ -x "$R/usr/local/libexec/snapship/snapship-agentd" ] || fail "the installed supervisor is not executable"
[ "$(stat -c %a "$R/etc/snapship/snapship.conf")" = 600 ] ||
	fail "the sample config has mode $(stat -c %a "$R/etc/snapship/snapship.conf"), expected 600"
grep -qx 'ExecStart=/usr/local/sbin/snapship agent' "$R/usr/local/lib/systemd/system/snapship.service" ||
	fail "the unit's ExecStart is not /usr/local/sbin/snapship agent"
# the sample config is one snapship reads (its retention policy active)
"$R/usr/local/sbin/snapship" --config "$R/etc/snapship/snapship.conf" --state-dir "$TEST_TMP/st" \
	--json config check >"$TEST_TMP/check.json" 2>&1 || rc=$?
[ "${rc:-0}" != 2 ] || fail "the sample config does not parse: $(cat "$TEST_TMP/check.json")"

# an edited config survives a second install and the uninstall
echo "# edited" >>"$R/etc/snapship/snapship.conf"
"${M[@]}" install "DESTDIR=$R" >"$TEST_TMP/install2.out" 2>&1 ||
	{ cat "$TEST_TMP/install2.out"; fail "the second make install failed"; }
grep -q '^# edited' "$R/etc/snapship/snapship.conf" || fail "make install overwrote an existing config"
cmp -s "$SRC_DIR/dist/snapship.conf" "$R/etc/snapship/snapship.conf.sample" ||
	fail "no snapship.conf.sample next to the existing config"
"${M[@]}" uninstall "DESTDIR=$R" >"$TEST_TMP/uninstall.out" 2>&1 ||
	{ cat "$TEST_TMP/uninstall.out"; fail "make uninstall failed"; }
left=$(cd "$R" && find . -type f | sort)
[ "$left" = "./etc/snapship/snapship.conf" ] ||
	fail "after make uninstall, expected only the edited config left, found: $left"
# unedited, it goes too
rm -rf "$R"
"${M[@]}" install "DESTDIR=$R" >/dev/null 2>&1 || fail "make install (again) failed"
"${M[@]}" uninstall "DESTDIR=$R" >/dev/null 2>&1 || fail "make uninstall (again) failed"
left=$(cd "$R" && find . -type f)
[ -z "$left" ] || fail "make uninstall left files: $left"
[ ! -d "$R/etc/snapship" ] || fail "make uninstall left an empty /etc/snapship"

# systemd-analyze verify: installed where its ExecStart exists
P=$TEST_TMP/prefix
"${M[@]}" install "PREFIX=$P/usr" "SYSCONFDIR=$P/etc" >/dev/null 2>&1 ||
	fail "make install PREFIX=$P/usr failed"
unit=$P/usr/lib/systemd/system/snapship.service
grep -qx "ExecStart=$P/usr/sbin/snapship agent" "$unit" || fail "ExecStart not at PREFIX: $(grep ExecStart "$unit")"
[ -x "$P/usr/libexec/snapship/snapship-agentd" ] || fail "the supervisor is not in PREFIX/libexec/snapship"
# shellcheck disable=SC2016 # $MAINPID is for systemd
for want in Type=notify KillMode=mixed WatchdogSec= Restart=on-failure IOSchedulingClass=idle CPUWeight= IOWeight= \
	NoNewPrivileges=yes MemoryDenyWriteExecute=yes 'ExecReload=/bin/kill -HUP $MAINPID'; do
	grep -q "^$want" "$unit" || fail "the unit has no $want"
done
MANPATH=$P/usr/share/man: systemd-analyze verify "$unit" >"$TEST_TMP/verify.out" 2>&1 ||
	{ cat "$TEST_TMP/verify.out"; fail "systemd-analyze verify rejects the unit"; }
echo "systemd-analyze verify: ok"
# for the record (not judged): systemd's exposure score of the hardening
systemd-analyze security --offline=yes "$unit" 2>/dev/null | grep -i 'overall exposure' || true
# a unit whose binary is not there is refused: the check can fail
sed "s|^ExecStart=.*|ExecStart=$P/nowhere/snapship agent|" "$unit" >"$TEST_TMP/snapship.service"
if MANPATH=$P/usr/share/man: systemd-analyze verify "$TEST_TMP/snapship.service" >/dev/null 2>&1; then
	fail "systemd-analyze verify accepts a unit without its binary: it checks nothing"
fi
"${M[@]}" uninstall "PREFIX=$P/usr" "SYSCONFDIR=$P/etc" >/dev/null 2>&1 || fail "make uninstall PREFIX=$P/usr failed"
echo "ok"
