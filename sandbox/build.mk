# sandbox/: the grain sandbox library and the granary-sandbox CLI.

PROGRAM_NAMES += granary-sandbox

granary-sandbox_OBJS := $(addprefix $(BUILD)/obj/sandbox/, \
	granary-sandbox.o)
