# supervisor/: granaryd (the daemon) and granary (the admin CLI).

PROGRAM_NAMES += granaryd granary

granaryd_OBJS := $(addprefix $(BUILD)/obj/supervisor/, \
	front.o \
	granaryd.o \
	listen.o)

granary_OBJS := $(addprefix $(BUILD)/obj/supervisor/, \
	granary.o)
