# spk/: the package format library and the spk CLI.

PROGRAM_NAMES += spk

spk_OBJS := $(addprefix $(BUILD)/obj/spk/, \
	spk.o)
