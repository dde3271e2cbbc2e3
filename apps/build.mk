# apps/: the example apps are built by their own build.sh scripts (they pack
# with a key of their author's); grain-test, the app of the grain and proxy
# tests and of the benchmarks, is also built here, statically like
# grain-init, as build/apps/grain-test.

STATIC_PROGRAM_NAMES += apps/grain-test

apps/grain-test_OBJS := $(BUILD)/static/apps/grain-test/grain-test.o

# The static link rule writes into $(BUILD)/apps/, which nothing else makes.
$(BUILD)/apps/grain-test: | $(BUILD)/apps/
$(BUILD)/apps/:
	@mkdir -p $@
