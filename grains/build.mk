# grains/: grain lifecycle; grain-init, pid 1 of every grain (static: the
# package it runs in may carry no libc).

STATIC_PROGRAM_NAMES += grain-init

grain-init_OBJS := $(addprefix $(BUILD)/static/grains/, \
	grain-init.o)
