# tests/: unit test binaries (TAP), fuzz targets and their corpus replayers.
# The lists themselves live with the code they test (UNIT_TESTS, FUZZ_TARGETS
# in each directory's build.mk).

TEST_SUPPORT_OBJS := $(BUILD)/obj/tests/unit/tap.o
REPLAY_MAIN_OBJ := $(BUILD)/obj/tests/fuzz/replay-main.o

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TEST_SUPPORT_OBJS) $(LIBRARIES)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(LINK)

# `make test` replays each committed corpus through a plain main(): no clang needed.
$(BUILD)/tests/fuzz/replay-%: $(BUILD)/obj/tests/fuzz/fuzz-%.o $(REPLAY_MAIN_OBJ) $(LIBRARIES)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(LINK)

# `make fuzz` links the same target with libFuzzer (FUZZ=1, CC=clang).
$(BUILD)/fuzz/fuzz-%: $(BUILD)/obj/tests/fuzz/fuzz-%.o $(LIBRARIES)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@ (libFuzzer)")
	$(Q)$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) -Wl,--start-group \
		$(LIBRARIES) -Wl,--end-group $(PKG_LIBS)

.PHONY: tests fuzz-targets
tests: programs $(UNIT_TESTS:%=$(BUILD)/tests/unit/%) \
	$(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay-%) $(TEST_PROGRAMS)
fuzz-targets: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)

.PRECIOUS: $(BUILD)/obj/%.o $(BUILD)/static/%.o
