# common/: helpers every other directory uses (see common/*.h).

COMMON_SOURCES := \
	common/buf.c \
	common/datagram.c \
	common/dir.c \
	common/json-util.c \
	common/log.c \
	common/parse.c \
	common/token.c

# The subset with no library dependencies, for static programs (grain-init).
COMMON_STATIC_SOURCES := \
	common/buf.c \
	common/datagram.c \
	common/dir.c \
	common/log.c \
	common/parse.c

$(BUILD)/lib/libgranary-common.a: $(COMMON_SOURCES:%.c=$(BUILD)/obj/%.o)
$(BUILD)/lib/libgranary-common-static.a: $(COMMON_STATIC_SOURCES:%.c=$(BUILD)/static/%.o)

LIBRARIES += $(BUILD)/lib/libgranary-common.a
STATIC_LIBRARIES += $(BUILD)/lib/libgranary-common-static.a

UNIT_TESTS += test-buf test-constant-time test-dir test-json test-log test-parse test-token
FUZZ_TARGETS += json parse token
