# supervisor/: granaryd (the daemon) and granary (the admin CLI), on a library
# of the parts both (and the unit tests) use.

SUPERVISOR_SOURCES := \
	supervisor/apps.c \
	supervisor/auth.c \
	supervisor/caps.c \
	supervisor/config.c \
	supervisor/db.c \
	supervisor/front.c \
	supervisor/front_api.c \
	supervisor/front_grains.c \
	supervisor/front_loop.c \
	supervisor/front_proxy.c \
	supervisor/front_sessions.c \
	supervisor/front_shares.c \
	supervisor/http-request.c \
	supervisor/http-response.c \
	supervisor/install.c \
	supervisor/ipc.c \
	supervisor/launcher.c \
	supervisor/launcher-client.c \
	supervisor/listen.c \
	supervisor/lockdown.c

$(BUILD)/lib/libgranary-supervisor.a: $(SUPERVISOR_SOURCES:%.c=$(BUILD)/obj/%.o)
LIBRARIES += $(BUILD)/lib/libgranary-supervisor.a

PROGRAM_NAMES += granaryd granary granary-installer

granaryd_OBJS := $(BUILD)/obj/supervisor/granaryd.o
granary_OBJS := $(BUILD)/obj/supervisor/granary.o
granary-installer_OBJS := $(BUILD)/obj/supervisor/installer.o

# Where granaryd looks for granary-installer when it is not beside it.
$(BUILD)/obj/supervisor/install.o $(BUILD)/obj/supervisor/granaryd.o: \
	CFLAGS += -DGRANARY_LIBEXECDIR='"$(LIBEXECDIR)"'

UNIT_TESTS += test-config test-db test-ipc test-http-request test-http-response test-launcher
FUZZ_TARGETS += config ipc http-request http-response

# tests/proxy-harness: the proxy engine behind a bare libmicrohttpd daemon
# (t0420, and measuring it against nginx).
$(BUILD)/tests/proxy-harness: $(BUILD)/obj/tests/proxy-harness.o $(LIBRARIES)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(LINK)

TEST_PROGRAMS += $(BUILD)/tests/proxy-harness

# test-launcher's grain app: static, it runs in a package that has no libc.
$(BUILD)/tests/unit/hello-app: $(BUILD)/static/tests/unit/hello-app.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@ (static)")
	$(Q)$(CC) -static -o $@ $^

TEST_PROGRAMS += $(BUILD)/tests/unit/hello-app
