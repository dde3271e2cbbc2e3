# spk/: the package format library (libgranary-spk.a, API in spk/spk.h) and
# the spk CLI.

SPK_SOURCES := \
	spk/base32.c \
	spk/header.c \
	spk/key.c \
	spk/manifest.c \
	spk/pack.c \
	spk/package.c \
	spk/path.c \
	spk/unpack.c \
	spk/util.c

$(BUILD)/lib/libgranary-spk.a: $(SPK_SOURCES:%.c=$(BUILD)/obj/%.o)

LIBRARIES += $(BUILD)/lib/libgranary-spk.a

PROGRAM_NAMES += spk

spk_OBJS := $(addprefix $(BUILD)/obj/spk/, \
	spk.o)

UNIT_TESTS += test-spk-format test-spk-manifest test-spk-pack test-spk-unpack
FUZZ_TARGETS += spk-manifest spk-unpack
