# snapship — build
#   make                 release build into build/
#   make D=asan|ubsan    sanitizer build into build-asan/ or build-ubsan/
#   make check           install deps, build, run the whole test suite (root for integration)
#   make demo            install deps, build, run the demo (root: loop btrfs + local store)
#   make bench           the benchmarks of doc/BENCHMARKS.md (root)
#   make bench-dr        the DR figures (issue 13): restores from the secondary (root)
#   make bench-incr      incremental backups (issue 14): 1 % churn, restore (root)
#   make bench-sim30     30 simulated days at 4 h (issue 14; libfaketime) (root)
#   make bench-restic    restic's second backup as the peer (issue 14) (root)
#   make bench-lvm       LVM snapshot figures in the qemu guest (issue 16) (root)
#   make bench-enc       encrypted vs plain backup and restore (issue 15) (root)
#   make fuzz            build the libFuzzer targets (clang, ASan+UBSan) into
#                        build-fuzz/ and run each FUZZ_SECONDS (60) seconds
#   make fuzz-build      only build them (tests/fuzz/README.md)
#   make install         PREFIX (/usr/local), DESTDIR; make uninstall

D ?=
WERROR ?= 1
PREFIX ?= /usr/local
DESTDIR ?=

ifeq ($(D),)
B ?= build
MODE_CFLAGS := -O2 -g -D_FORTIFY_SOURCE=2
else ifeq ($(D),asan)
B := build-asan
MODE_CFLAGS := -O1 -g -fsanitize=address -fno-omit-frame-pointer
MODE_LDFLAGS := -fsanitize=address
else ifeq ($(D),ubsan)
B := build-ubsan
MODE_CFLAGS := -O1 -g -fsanitize=undefined -fno-sanitize-recover=all
MODE_LDFLAGS := -fsanitize=undefined
else
$(error D must be empty, asan or ubsan)
endif

PKGS := libbtrfsutil liburing libzstd libarchive jansson inih libxxhash openssl libcurl expat \
	libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
	-Wformat=2 -Wwrite-strings -Wconversion -Wno-sign-conversion -fno-common
ifeq ($(WERROR),1)
WARN += -Werror
endif

CFLAGS ?=
override CFLAGS += -std=c17 -D_GNU_SOURCE -I. $(WARN) $(MODE_CFLAGS) $(PKG_CFLAGS) -MMD -MP -pthread
override LDFLAGS += $(MODE_LDFLAGS) -pthread
LDLIBS := $(PKG_LIBS) -lm

CLI_SRCS := agent/main.c agent/cli.c agent/drill_cmd.c
# the agent's supervisor: a program of its own, libc and libsystemd only
AGENTD_SRCS := agent/supervise.c
LIBEXECDIR ?= $(PREFIX)/libexec
LIB_SRCS := $(wildcard common/*.c cow/*.c uploader/*.c stream/*.c) \
	$(filter-out $(CLI_SRCS) $(AGENTD_SRCS),$(wildcard agent/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
TOOL_BINS := $(B)/gendata

all: $(B)/snapship $(B)/snapship-agentd $(TOOL_BINS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libsnapship.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/snapship: $(CLI_SRCS:%.c=$(B)/%.o) $(B)/libsnapship.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# where snapship agent looks for the supervisor when it is not next to it
$(B)/agent/agent_exec.o: override CFLAGS += -DSNAPSHIP_LIBEXECDIR='"$(LIBEXECDIR)/snapship"'

$(B)/snapship-agentd: $(AGENTD_SRCS:%.c=$(B)/%.o)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)

$(B)/gendata: $(B)/tools/gendata.o
	$(CC) $(LDFLAGS) -o $@ $^ -lm

$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libsnapship.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

deps:
	bash tools/deps.sh

check: deps
	$(MAKE) all unit lint
	@if $(FUZZ_CC) --version >/dev/null 2>&1; then $(MAKE) fuzz-build; \
	else echo "check: $(FUZZ_CC) is not installed; the fuzz targets will be skipped"; fi
	bash tests/run.sh $(B)

# the static analyzer must stay at zero findings
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--std=c11 -I. -D_GNU_SOURCE --suppress=missingIncludeSystem \
		common cow stream agent uploader tools/gendata.c

demo: deps
	$(MAKE) all
	bash tools/demo.sh $(B)

bench: deps
	$(MAKE) all
	bash tools/bench.sh $(B)

# the DR figures of issue 13: one file and a whole restore from the
# secondary region, and a drill (tools/bench_dr.sh)
bench-dr: deps
	$(MAKE) all
	bash tools/bench_dr.sh $(B)

# the impact of a backup on a live PostgreSQL under pgbench (issue 12)
bench-pg: deps
	$(MAKE) all
	bash tools/bench_pg.sh $(B)

# the figures of issue 14 (incremental backups): a 1 % churn and restores
# (tools/bench_incr.sh), 30 simulated days at 4 h with retention
# (tools/bench_sim30.sh), restic's second backup (tools/bench_restic.sh)
bench-incr: deps
	$(MAKE) all
	bash tools/bench_incr.sh $(B)

bench-sim30: deps
	$(MAKE) all
	bash tools/bench_sim30.sh $(B)

bench-restic: deps
	$(MAKE) all
	bash tools/bench_restic.sh $(B)

# the LVM figures of issue 16, in the qemu guest (tools/vm.sh)
bench-lvm: deps
	$(MAKE) all
	bash tools/bench_lvm.sh $(B)

# the cost of client-side encryption (issue 15): encrypted vs plain backup
# CPU and restore wall (tools/bench_enc.sh)
bench-enc: deps
	$(MAKE) all
	bash tools/bench_enc.sh $(B)

# ---- fuzzing: libFuzzer targets for every parser of store data, built with
# clang under ASan+UBSan into their own directory (tests/fuzz/README.md)
FUZZ_CC ?= clang
FB := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -I. $(WARN) -O1 -g $(FUZZ_SAN) \
	-fsanitize=fuzzer-no-link $(PKG_CFLAGS) -MMD -MP -pthread
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FB)/%,$(wildcard tests/fuzz/fuzz_*.c))

$(FB)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FB)/libsnapship.a: $(LIB_SRCS:%.c=$(FB)/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

$(FB)/fuzz_%: $(FB)/tests/fuzz/fuzz_%.o $(FB)/libsnapship.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(PKG_LIBS) -lm

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh $(FB)

# ---- install: the binary, the man pages, a commented sample config (never
# over an existing one: then it goes next to it as .sample) and the systemd
# unit (its ExecStart pointed at this PREFIX)
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
ETC := $(DESTDIR)$(SYSCONFDIR)/snapship

install: all
	install -D -m 0755 $(B)/snapship $(DESTDIR)$(PREFIX)/sbin/snapship
	install -D -m 0755 $(B)/snapship-agentd $(DESTDIR)$(LIBEXECDIR)/snapship/snapship-agentd
	install -D -m 0644 doc/snapship.8 $(DESTDIR)$(PREFIX)/share/man/man8/snapship.8
	install -D -m 0644 doc/snapship.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/snapship.conf.5
	install -d -m 0755 $(ETC)
	if [ -e $(ETC)/snapship.conf ]; then \
		install -m 0600 dist/snapship.conf $(ETC)/snapship.conf.sample; \
		echo "install: $(ETC)/snapship.conf exists: the sample went to snapship.conf.sample"; \
	else install -m 0600 dist/snapship.conf $(ETC)/snapship.conf; fi
	sed 's|/usr/local/sbin/snapship|$(PREFIX)/sbin/snapship|' dist/snapship.service \
		>$(B)/snapship.service
	install -D -m 0644 $(B)/snapship.service $(DESTDIR)$(UNITDIR)/snapship.service

# the config stays when it was edited (it is no longer the sample)
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/snapship \
		$(DESTDIR)$(LIBEXECDIR)/snapship/snapship-agentd \
		$(DESTDIR)$(PREFIX)/share/man/man8/snapship.8 \
		$(DESTDIR)$(PREFIX)/share/man/man5/snapship.conf.5 \
		$(DESTDIR)$(UNITDIR)/snapship.service $(ETC)/snapship.conf.sample
	if cmp -s dist/snapship.conf $(ETC)/snapship.conf; then rm -f $(ETC)/snapship.conf; \
	elif [ -e $(ETC)/snapship.conf ]; then \
		echo "uninstall: keeping $(ETC)/snapship.conf (edited)"; fi
	if [ -d $(ETC) ]; then rmdir --ignore-fail-on-non-empty $(ETC); fi
	if [ -d $(DESTDIR)$(LIBEXECDIR)/snapship ]; then \
		rmdir --ignore-fail-on-non-empty $(DESTDIR)$(LIBEXECDIR)/snapship; fi

clean:
	rm -rf build build-asan build-ubsan build-fuzz

.PHONY: all unit lint deps check demo bench bench-dr bench-pg bench-incr bench-sim30 bench-restic bench-lvm bench-enc install uninstall clean fuzz fuzz-build
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
ifneq ($(filter fuzz%,$(MAKECMDGOALS)),)
-include $(shell find $(FB) -name '*.d' 2>/dev/null)
endif
