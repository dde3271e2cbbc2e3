# supervisor/: granaryd (the daemon) and granary (the admin CLI), on a library
# of the parts both (and the unit tests) use.

SUPERVISOR_SOURCES := \
	supervisor/auth.c \
	supervisor/config.c \
	supervisor/db.c \
	supervisor/front.c \
	supervisor/front_api.c \
	supervisor/ipc.c \
	supervisor/launcher.c \
	supervisor/listen.c

$(BUILD)/lib/libgranary-supervisor.a: $(SUPERVISOR_SOURCES:%.c=$(BUILD)/obj/%.o)
LIBRARIES += $(BUILD)/lib/libgranary-supervisor.a

PROGRAM_NAMES += granaryd granary

granaryd_OBJS := $(BUILD)/obj/supervisor/granaryd.o
granary_OBJS := $(BUILD)/obj/supervisor/granary.o

UNIT_TESTS += test-config test-db test-ipc
FUZZ_TARGETS += config ipc
