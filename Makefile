# loopscope: event-loop profiler and lag monitor.
#
#   make            build build/loopscope and build/loopdemo (installs missing Debian packages)
#   make demo       run the demo loop and watch it
#   make test       every test (unit tests under ASan+UBSan, integration tests as root)
#   make bench      benchmarks (never part of make test)
#   make soak       serve under 1,000 clients for 10 minutes: RSS and fds (never part of make test)
#   make fuzz       the libFuzzer harnesses for FUZZ_TIME seconds each (make test runs them FUZZ_TEST_TIME s)
#   make install    PREFIX=/usr/local by default
#   make deps       install every Debian package the project needs: build, test, bench (idempotent)
#
# Every part is picked up by wildcard, so adding a source file needs no edit here:
#   loop/src/*.c            -> build/liblsl.a            (reference event loop)
#   loop/demo/*.c           -> build/loopdemo
#   bpf/*.bpf.c             -> build/bpf/*.skel.h        (clang -target bpf + bpftool)
#   userspace/*/*.c dashboards/top/*.c -> build/loopscope (userspace/README.md: which folder holds what)
#   tests/unit/*.c          -> build/asan/tests/*        (cmocka, ASan+UBSan)
#   tests/bench/*.c         -> build/bench/bin/*
# Output never lands in the source tree; V=1 shows the full commands.

BUILD   ?= build
PREFIX  ?= /usr/local
VERSION := 0.1.0

CC      ?= gcc
CLANG   ?= clang
BPFTOOL ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
# Override to build against a prepared header (e.g. on a machine without BTF).
VMLINUX_H   ?= $(BUILD)/vmlinux.h

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

.DEFAULT_GOAL := all
# Build on every CPU unless the caller chose a -j of its own (the rules name every
# dependency, generated skeletons and package stamps included). The recipes that run
# scripts which call make again start with '+', so those share the job slots.
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)
endif
.DELETE_ON_ERROR:
# Keep generated skeletons and objects that only feed other targets: make would
# otherwise delete them as intermediates and rebuild them on every run.
.SECONDARY:
.SUFFIXES:
.PHONY: all deps demo test bench fuzz install uninstall clean check-deps

# ---------------------------------------------------------------- packages
# Debian packages, by what needs them: building the agent and the loop needs only
# DEB_BUILD; `make test` and `make bench` add their own tools. Add a package with a
# `+=` line of its own next to the others of its kind.
DEB_BUILD := build-essential pkg-config clang llvm libbpf-dev bpftool libelf-dev libdw-dev \
	zlib1g-dev libncurses-dev systemtap-sdt-dev libcjson-dev libcapstone-dev
DEB_BUILD += libssl-dev
DEB_BUILD += libyaml-dev
DEB_BUILD += libcrypt-dev
DEB_TEST  := libcmocka-dev libuv1-dev tmux jq python3 nodejs curl procps iproute2 prometheus wrk
# 65-profile-readers: the SVG flame graph in a browser, the pprof file in its own reader.
DEB_TEST  += golang-go
# 49-serve-tls makes its certificates with openssl.
DEB_TEST  += openssl
DEB_BENCH := $(DEB_TEST)
# The flame graph and report tests render in headless Chromium.
DEB_TEST  += chromium
# libFuzzer harnesses (tests/fuzz/) build with clang-14 and its sanitizer runtimes.
DEB_TEST  += clang-14 libclang-rt-14-dev

DEPS_STAMP       := $(BUILD)/.deps-build
DEPS_TEST_STAMP  := $(BUILD)/.deps-test
DEPS_BENCH_STAMP := $(BUILD)/.deps-bench

# $(call deb_install,PACKAGES,LOG): install whichever of PACKAGES are missing. Cheap when
# everything is there (one dpkg-query each); as root only.
define deb_install
	$(Q)mkdir -p $(BUILD)
	$(Q)missing=$$(for p in $(1); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS    installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "loopscope: missing packages ($$missing); run 'make deps' as root" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing >$(2) 2>&1 \
			|| { echo "loopscope: apt-get install failed, see $(2)" >&2; exit 1; }; \
	fi
endef

# The stamps follow dpkg's database too, so a package removed later is installed again.
$(DEPS_STAMP): Makefile $(wildcard /var/lib/dpkg/status)
	$(call deb_install,$(DEB_BUILD),$(BUILD)/apt.log)
	$(Q)touch $@

$(DEPS_TEST_STAMP): $(DEPS_STAMP)
	$(call deb_install,$(DEB_TEST),$(BUILD)/apt-test.log)
	$(Q)touch $@

$(DEPS_BENCH_STAMP): $(DEPS_STAMP)
	$(call deb_install,$(DEB_BENCH),$(BUILD)/apt-bench.log)
	$(Q)touch $@

# Official Node.js builds the Node tests run on (tests/node/versions), from the npm
# registry into a machine-wide cache that outlives the clone: a version already there is
# never fetched again. Without a registry the fetch fails with one line; under CI=true
# that fails make test, otherwise the tests report the missing version and go on.
NODE_CACHE    ?= /var/cache/loopscope/node
NODE_VERSIONS := $(shell grep -E '^[0-9]+\.[0-9]+\.[0-9]+$$' tests/node/versions)
NODE_BINS     := $(foreach v,$(NODE_VERSIONS),$(NODE_CACHE)/$(v)/bin/node)
export LS_NODE_CACHE := $(NODE_CACHE)

$(NODE_CACHE)/%/bin/node: | $(DEPS_TEST_STAMP)
	$(Q)tests/node/install.sh $(NODE_CACHE) $* || [ "$${CI:-}" != true ]

deps:
	$(Q)rm -f $(DEPS_STAMP) $(DEPS_TEST_STAMP) $(DEPS_BENCH_STAMP)
	$(Q)$(MAKE) --no-print-directory $(DEPS_STAMP) $(DEPS_TEST_STAMP) $(DEPS_BENCH_STAMP)

# ---------------------------------------------------------------- flags
WARN     := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes
# Every source folder of the agent is on the include path: a header is named by its
# file name alone, so a module can move between folders without touching its users.
# -iquote, not -I: `#include "elf.h"` is lib/elf.h, while libelf's own <elf.h> stays
# the system's.
AGENT_DIRS := $(sort $(dir $(wildcard userspace/*/*.c userspace/*/*.h dashboards/top/*.c)))
CPPFLAGS := -D_GNU_SOURCE -DLOOPSCOPE_VERSION='"$(VERSION)"' -Iloop/include -Ibpf $(addprefix -iquote ,$(AGENT_DIRS)) -I$(BUILD)/bpf
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -fno-omit-frame-pointer -MMD -MP
SANFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LDLIBS_AGENT := -lbpf -lelf -ldw -lz -lncursesw -lcapstone -lcjson -lpthread -lm
# serve --web.config.file: TLS (OpenSSL), the YAML file (libyaml), bcrypt (crypt(3)).
LDLIBS_AGENT += -lssl -lcrypto -lyaml -lcrypt
LDLIBS_AGENT += -lstdc++
# libFuzzer harness sources (built by the fuzz rules of tests/fuzz/README.md)
FUZZ_SRCS_maps_fuzz := userspace/lib/proc.c
FUZZ_LIBS_maps_fuzz :=
LDLIBS_LOOP  := -lpthread -lm

BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_x86 -I$(BUILD)/bpf -Ibpf -Iloop/include \
	-I/usr/include/$(shell uname -m)-linux-gnu -MMD -MP

# ---------------------------------------------------------------- sources
LOOP_SRCS  := $(wildcard loop/src/*.c)
DEMO_SRCS  := $(wildcard loop/demo/*.c)
BPF_SRCS   := $(wildcard bpf/*.bpf.c)
AGENT_SRCS := $(filter-out userspace/cmd/main.c,$(wildcard userspace/*/*.c) $(wildcard dashboards/top/*.c))
UNIT_SRCS  := $(wildcard tests/unit/*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)

SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRCS))

PROGS := $(BUILD)/loopscope $(if $(DEMO_SRCS),$(BUILD)/loopdemo)
all: $(PROGS)

# $(call variant,DIR,EXTRA_CFLAGS): object rules and libraries for one build flavour.
# The release flavour lives in $(BUILD), the sanitizer one in $(BUILD)/asan.
define variant
$(1)/obj/%.o: %.c | $(DEPS_STAMP) $(SKELS)
	$$(call msg,CC,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) -c $$< -o $$@

$(1)/liblsl.a: $$(patsubst %.c,$(1)/obj/%.o,$$(LOOP_SRCS))
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@ && ar rcs $$@ $$^

$(1)/libagent.a: $$(patsubst %.c,$(1)/obj/%.o,$$(AGENT_SRCS))
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@ && ar rcs $$@ $$^

$(1)/loopscope: $(1)/obj/userspace/cmd/main.o $(1)/libagent.a
	$$(call msg,LINK,$$@)
	$$(Q)$$(CC) $(2) -o $$@ $$^ $$(LDLIBS_AGENT)

$(1)/loopdemo: $$(patsubst %.c,$(1)/obj/%.o,$$(DEMO_SRCS)) $(1)/liblsl.a
	$$(call msg,LINK,$$@)
	$$(Q)$$(CC) $(2) -o $$@ $$^ $$(LDLIBS_LOOP)
endef

$(eval $(call variant,$(BUILD),))
$(eval $(call variant,$(BUILD)/asan,$(SANFLAGS)))
# The reference loop keeps no data below %rsp: a probed 5-byte nop becomes a call on
# kernels that optimise it, and the call's return address lands there
# (loop/src/lsl_internal.h).
$(BUILD)/obj/loop/src/%.o $(BUILD)/asan/obj/loop/src/%.o: CFLAGS += -mno-red-zone

# ---------------------------------------------------------------- bpf
$(VMLINUX_H): | $(DEPS_STAMP)
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@

$(BUILD)/bpf/vmlinux.h: $(VMLINUX_H)
	$(Q)mkdir -p $(@D)
	$(Q)[ "$<" = "$@" ] || cp $< $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BUILD)/bpf/vmlinux.h | $(DEPS_STAMP)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)llvm-strip -g $@ 2>/dev/null || true

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,GENSKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

# ---------------------------------------------------------------- tests
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/asan/tests/%,$(UNIT_SRCS))

$(BUILD)/asan/tests/%: $(BUILD)/asan/obj/tests/unit/%.o $(BUILD)/asan/libagent.a $(BUILD)/asan/liblsl.a
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(SANFLAGS) -o $@ $^ -lcmocka $(LDLIBS_AGENT)

# Unit tests need cmocka, a test dependency.
$(patsubst tests/unit/%.c,$(BUILD)/asan/obj/tests/unit/%.o,$(UNIT_SRCS)): | $(DEPS_TEST_STAMP)

# ---------------------------------------------------------------- fuzz
# libFuzzer harnesses for the parsers of outside input (tests/fuzz/README.md). Each
# lists the sources it needs; tests/integration/69-fuzz.sh runs each for a bounded time
# in make test, `make fuzz FUZZ_TIME=SECONDS` for longer.
FUZZ_CC    ?= clang-14
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_TIME  ?= 600
# make test's run of each harness (69-fuzz.sh): a smoke run on the corpus, the long
# runs are make fuzz's.
FUZZ_TEST_TIME ?= 4
export LS_FUZZ_TEST_TIME := $(FUZZ_TEST_TIME)
FUZZ_NAMES := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/*_fuzz.c))
FUZZ_BINS  := $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_NAMES))
FUZZ_SRCS_v8pos_fuzz := userspace/backends/v8pos.c
FUZZ_LIBS_v8pos_fuzz :=
FUZZ_SRCS_http_parse_fuzz := userspace/wire/http_parse.c
FUZZ_LIBS_http_parse_fuzz :=
FUZZ_SRCS_snapjson_fuzz := userspace/wire/snapjson.c userspace/wire/buf.c userspace/core/snapshot.c userspace/core/stacktab.c \
	userspace/core/histogram.c userspace/core/common.c
FUZZ_LIBS_snapjson_fuzz := -lcjson -lm
FUZZ_SRCS_webconfig_fuzz := userspace/wire/webconfig.c
FUZZ_LIBS_webconfig_fuzz := -lyaml -lcrypt -lssl -lcrypto
FUZZ_SRCS_record_fuzz := userspace/record/recfile.c userspace/record/replay.c userspace/record/recstacks.c \
	userspace/core/stacktab.c userspace/wire/snapjson.c \
	userspace/wire/buf.c userspace/core/snapshot.c userspace/core/common.c
FUZZ_LIBS_record_fuzz := -lz -lcjson

define fuzz_rule
$(BUILD)/fuzz/$(1): tests/fuzz/$(1).c $(FUZZ_SRCS_$(1)) | $(DEPS_TEST_STAMP) $(SKELS)
	$$(call msg,FUZZ,$$@)
	$$(Q)mkdir -p $$(@D)
	$$(Q)$(FUZZ_CC) $$(CPPFLAGS) -std=gnu11 $(FUZZ_FLAGS) -o $$@ $$(filter %.c,$$^) $(FUZZ_LIBS_$(1))
endef
$(foreach f,$(FUZZ_NAMES),$(eval $(call fuzz_rule,$(f))))

# make soak: serve with several targets and 1,000 clients for SOAK_SECONDS (default
# 600); RSS and open descriptors at the start and the end. Not part of make test.
SOAK_SECONDS ?= 600
.PHONY: soak
soak: $(DEPS_TEST_STAMP) $(PROGS)
	$(Q)tests/soak.sh $(SOAK_SECONDS)

.PHONY: fuzz
# the recording reader's seeds are the unit tests' recordings
fuzz: $(FUZZ_BINS) $(BUILD)/asan/tests/recfile_test $(BUILD)/asan/tests/replay_test
	$(Q)tests/fuzz/run.sh $(FUZZ_TIME) $(FUZZ_NAMES)

TEST_BINS := $(PROGS) $(BUILD)/asan/loopscope $(if $(DEMO_SRCS),$(BUILD)/asan/loopdemo) $(UNIT_BINS) $(FUZZ_BINS)

# Integration tests read these to find what to run.
export LS_BUILD := $(abspath $(BUILD))

test: $(DEPS_TEST_STAMP) $(NODE_BINS) $(TEST_BINS)
	+$(Q)tests/run.sh $(if $(TESTS),$(TESTS),$(UNIT_BINS) $(sort $(wildcard tests/integration/*.sh tests/integration/*.py)))

# ---------------------------------------------------------------- bench
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/bin/%,$(BENCH_SRCS))
# Benchmarks link libuv, a bench dependency.
$(patsubst tests/bench/%.c,$(BUILD)/obj/tests/bench/%.o,$(BENCH_SRCS)): | $(DEPS_BENCH_STAMP)

$(BUILD)/bench/bin/%: $(BUILD)/obj/tests/bench/%.o $(BUILD)/liblsl.a
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -o $@ $^ -luv $(LDLIBS_LOOP)

bench: $(DEPS_BENCH_STAMP) all $(BENCH_BINS)
	+$(Q)tests/bench/run.sh

# ---------------------------------------------------------------- demo
demo: all
	$(Q)tests/demo.sh

# ---------------------------------------------------------------- install
install: $(PROGS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BUILD)/loopscope $(DESTDIR)$(PREFIX)/bin/loopscope
	install -m 0755 $(BUILD)/loopdemo $(DESTDIR)$(PREFIX)/bin/loopdemo
	install -m 0644 userspace/loopscope.1 $(DESTDIR)$(PREFIX)/share/man/man1/loopscope.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/loopscope $(DESTDIR)$(PREFIX)/bin/loopdemo \
		$(DESTDIR)$(PREFIX)/share/man/man1/loopscope.1

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
