# Granary: one non-recursive Makefile. Every output goes under $(BUILD).
#
#   make                 build everything (installs missing Debian packages as root)
#   make run             build and start granaryd on http://localhost:6080, state in ./var
#   make test [T=pat]    build and run the tests whose name contains pat (all by default)
#   make check-asan      the whole suite again, built with ASan+UBSan in build-asan/
#   make fuzz            run every libFuzzer target for FUZZ_SECONDS each (clang, build-fuzz/)
#   make bench           the benchmarks in tests/bench/, written to docs/benchmarks.md
#   make style           check formatting with clang-format (make format rewrites)
#   make install         PREFIX=/usr/local DESTDIR=
#   make clean
#
# Each directory lists its own sources in a build.mk fragment included below;
# they are parts of this one Makefile, not sub-makes, so there is one
# dependency graph and `make -j` is always right.

VERSION := 0.1.0
BUILD ?= build
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/lib/granary
DESTDIR ?=
CC ?= cc
SANITIZE ?=
FUZZ ?=
FUZZ_SECONDS ?= 60
T ?=

# Make no "cc" assumption when the user did not ask for one.
ifeq ($(origin CC),default)
CC := gcc
endif

Q := $(if $(V),,@)
MAKEFLAGS += --no-builtin-rules

PKGS := libmicrohttpd libseccomp libcap-ng sqlite3 libsodium libarchive libzstd jansson

# Asked of pkg-config once, when first used (after `deps` has run), not at parse
# time, when the packages may not be installed yet.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Wwrite-strings -fno-common -Wno-format-nonliteral \
	-Wno-missing-field-initializers

BASE_CFLAGS := -std=gnu17 -g -D_GNU_SOURCE -I. -I$(BUILD)/gen \
	-DGRANARY_VERSION='"$(VERSION)"' $(WARNINGS) -fstack-protector-strong

ifeq ($(SANITIZE),1)
OPT_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
OPT_LDFLAGS := -fsanitize=address,undefined
else ifeq ($(FUZZ),1)
OPT_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=all -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
OPT_LDFLAGS := -fsanitize=address,undefined
else
OPT_CFLAGS := -O2 -D_FORTIFY_SOURCE=2
OPT_LDFLAGS :=
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(OPT_CFLAGS) -fPIE $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(OPT_LDFLAGS) -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(LDFLAGS)
# Static programs (grain-init) never get sanitizers: they run where no runtime is.
STATIC_CFLAGS = $(BASE_CFLAGS) -O2 -D_FORTIFY_SOURCE=2 $(CFLAGS)

# Filled in by the build.mk fragments:
#   PROGRAM_NAMES += name          with name_OBJS := objects under $(BUILD)/obj
#   STATIC_PROGRAM_NAMES += name   with name_OBJS under $(BUILD)/static, linked -static
#   LIBRARIES += $(BUILD)/lib/x.a  module libraries every program and test links
#   UNIT_TESTS += test-x           from tests/unit/test-x.c
#   FUZZ_TARGETS += x              from tests/fuzz/fuzz-x.c, corpus tests/fuzz/corpus/x/
#   TEST_PROGRAMS += path          helper binaries the tests need
PROGRAM_NAMES :=
STATIC_PROGRAM_NAMES :=
LIBRARIES :=
STATIC_LIBRARIES :=
UNIT_TESTS :=
FUZZ_TARGETS :=
TEST_PROGRAMS :=

.PHONY: all
all: programs

include common/build.mk
include sandbox/build.mk
include spk/build.mk
include grains/build.mk
include supervisor/build.mk
include apps/build.mk
include tests/build.mk

# ---- generic rules --------------------------------------------------------

# Every object waits for the Debian packages (order-only: a check, not a rebuild).
$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/static/%.o: %.c | deps
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (static)")
	$(Q)$(CC) $(STATIC_CFLAGS) -MMD -MP -c -o $@ $<

# A program links its own objects, then every module library (order-free).
LINK = $(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) -Wl,--start-group $(LIBRARIES) \
	-Wl,--end-group $(PKG_LIBS)

define program_rule
$(BUILD)/$(1): $$($(1)_OBJS) $$(LIBRARIES)
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(LINK)
endef
define static_program_rule
$(BUILD)/$(1): $$($(1)_OBJS) $$(STATIC_LIBRARIES)
	@$$(if $$(Q),echo "  LINK    $$@ (static)")
	$$(Q)$$(CC) -static -o $$@ $$(filter %.o,$$^) $$(STATIC_LIBRARIES)
endef
$(foreach p,$(PROGRAM_NAMES),$(eval $(call program_rule,$(p))))
$(foreach p,$(STATIC_PROGRAM_NAMES),$(eval $(call static_program_rule,$(p))))

$(BUILD)/lib/%.a:
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

PROGRAMS := $(PROGRAM_NAMES:%=$(BUILD)/%) $(STATIC_PROGRAM_NAMES:%=$(BUILD)/%)

.PHONY: programs
programs: $(PROGRAMS)

.PHONY: deps
deps:
	$(Q)scripts/deps.sh ensure build

.PHONY: deps-test
deps-test:
	$(Q)scripts/deps.sh ensure build test

.PHONY: deps-bench
deps-bench:
	$(Q)scripts/deps.sh ensure build test bench

# ---- run, test ------------------------------------------------------------

RUN_LISTEN ?= 127.0.0.1:6080

.PHONY: run
run: deps
	$(Q)$(MAKE) --no-print-directory programs
	@# As root, granaryd runs its network-facing process as the user 'granary'.
	@[ "$$(id -u)" != 0 ] || id -u granary >/dev/null 2>&1 || useradd --system --user-group \
		--no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin granary
	@echo "Granary $(VERSION): http://localhost:6080/ (state in ./var, Ctrl-C stops it)"
	$(RUN_SCOPE) $(BUILD)/granaryd --state ./var --listen $(RUN_LISTEN)

# On cgroup v2 hosts run by systemd, granaryd gets a delegated scope of its own:
# grains' cgroups go below it (docs/admin.md, Grains).
RUN_SCOPE = $(shell [ "$$(id -u)" = 0 ] && [ -d /run/systemd/system ] && \
	[ "$$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ] && \
	command -v systemd-run >/dev/null && \
	echo systemd-run --quiet --scope --collect -p Delegate=yes --)

.PHONY: test
test: deps-test
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)BUILD=$(BUILD) T='$(T)' tests/run

.PHONY: check-asan
check-asan: deps-test
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 test

# Long runs (minutes each): tests/integration/soak-*.py.
.PHONY: soak
soak: deps-test
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)BUILD=$(BUILD) SOAK=1 TEST_TIMEOUT=3600 T='$(T)' tests/run

.PHONY: fuzz
fuzz: deps-test
	$(Q)$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang FUZZ=1 fuzz-targets
	$(Q)BUILD=build-fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) T='$(T)' tests/fuzz/run-fuzzers

.PHONY: bench
bench: deps-bench
	$(Q)$(MAKE) --no-print-directory programs
	$(Q)BUILD=$(BUILD) T='$(T)' tests/bench/run

# ---- style ----------------------------------------------------------------

# Tracked files and new ones not yet added (but not ignored ones).
STYLE_FILES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)

.PHONY: style
style:
	$(Q)clang-format --dry-run --Werror $(STYLE_FILES)
	@echo "style: $(words $(STYLE_FILES)) files formatted as .clang-format says"

.PHONY: format
format:
	$(Q)clang-format -i $(STYLE_FILES)

# ---- install, clean -------------------------------------------------------

.PHONY: install
install: programs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)
	install -m 0755 $(BUILD)/granaryd $(BUILD)/granary $(BUILD)/spk \
		$(BUILD)/granary-sandbox $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILD)/grain-init $(BUILD)/granary-installer $(DESTDIR)$(LIBEXECDIR)/

.PHONY: clean
clean:
	rm -rf build build-asan build-fuzz

# Dependency files of our objects only (a benchmark may copy trees into $(BUILD)).
-include $(shell find $(BUILD)/obj $(BUILD)/static -name '*.d' -type f 2>/dev/null)
