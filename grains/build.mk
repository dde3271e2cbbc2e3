# grains/: grain lifecycle; grain-init, pid 1 of every grain (static: the
# package it runs in may carry no libc), and the control socket protocol
# between grain-init and front (grain-protocol.c, in both; it needs only
# libc and common/datagram.c). The library also holds grain-init's log
# (grain-init-log.c) for its unit test.

STATIC_PROGRAM_NAMES += grain-init

grain-init_OBJS := $(addprefix $(BUILD)/static/grains/, \
	grain-init.o \
	grain-init-log.o \
	grain-protocol.o)

GRAINS_SOURCES := \
	grains/grain-init-log.c \
	grains/grain-protocol.c

$(BUILD)/lib/libgranary-grains.a: $(GRAINS_SOURCES:%.c=$(BUILD)/obj/%.o)
LIBRARIES += $(BUILD)/lib/libgranary-grains.a

UNIT_TESTS += test-grain-protocol test-grain-log
FUZZ_TARGETS += grain-protocol
