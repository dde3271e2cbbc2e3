# sandbox/: the grain sandbox library and the granary-sandbox CLI, plus the
# programs tests/security runs (the probe is static: it runs as a grain).

SANDBOX_SOURCES := \
	sandbox/sandbox.c \
	sandbox/sandbox-cgroup.c \
	sandbox/sandbox-host.c \
	sandbox/sandbox-mount.c \
	sandbox/sandbox-seccomp.c \
	sandbox/sandbox-uid.c

$(BUILD)/lib/libgranary-sandbox.a: $(SANDBOX_SOURCES:%.c=$(BUILD)/obj/%.o)
LIBRARIES += $(BUILD)/lib/libgranary-sandbox.a

PROGRAM_NAMES += granary-sandbox

granary-sandbox_OBJS := $(addprefix $(BUILD)/obj/sandbox/, \
	granary-sandbox.o)

# Where `make install` puts grain-init, for granary-sandbox to find it.
$(BUILD)/obj/sandbox/granary-sandbox.o: CFLAGS += -DGRANARY_LIBEXECDIR='"$(LIBEXECDIR)"'
