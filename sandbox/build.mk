# sandbox/: the grain sandbox library and the granary-sandbox CLI, plus the
# programs tests/security runs (the probe is static: it runs as a grain).

SANDBOX_SOURCES := \
	sandbox/sandbox.c \
	sandbox/sandbox-cgroup.c \
	sandbox/sandbox-host.c \
	sandbox/sandbox-mount.c \
	sandbox/sandbox-seccomp.c \
	sandbox/sandbox-seccomp-bpf.c \
	sandbox/sandbox-uid.c

$(BUILD)/lib/libgranary-sandbox.a: $(SANDBOX_SOURCES:%.c=$(BUILD)/obj/%.o)
LIBRARIES += $(BUILD)/lib/libgranary-sandbox.a

# The filter is compiled from the table at build time by seccomp-gen (a
# build tool linking only the table and libseccomp) into a header.
$(BUILD)/sandbox/seccomp-gen: $(BUILD)/obj/sandbox/seccomp-gen.o \
		$(BUILD)/obj/sandbox/sandbox-seccomp.o $(BUILD)/lib/libgranary-common.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/gen/sandbox/seccomp-bpf.h: $(BUILD)/sandbox/seccomp-gen
	@mkdir -p $(@D)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)$< >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/sandbox/sandbox-seccomp-bpf.o: $(BUILD)/gen/sandbox/seccomp-bpf.h

PROGRAM_NAMES += granary-sandbox

granary-sandbox_OBJS := $(addprefix $(BUILD)/obj/sandbox/, \
	granary-sandbox.o)

# Where `make install` puts grain-init, for granary-sandbox to find it.
$(BUILD)/obj/sandbox/granary-sandbox.o: CFLAGS += -DGRANARY_LIBEXECDIR='"$(LIBEXECDIR)"'

# tests/security: the probe runs as a grain, so it is static (no sanitizers:
# it runs where no runtime is); sandbox-tool reaches the library's internals.
$(BUILD)/tests/security/probe: $(BUILD)/static/tests/security/probe.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@ (static)")
	$(Q)$(CC) -static -pthread -o $@ $^

$(BUILD)/tests/security/sandbox-tool: $(BUILD)/obj/tests/security/sandbox-tool.o $(LIBRARIES)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(LINK)

TEST_PROGRAMS += $(BUILD)/tests/security/probe $(BUILD)/tests/security/sandbox-tool
UNIT_TESTS += test-sandbox
