# heapspy build. `make` builds build/heapspy; `make test` runs every test; `make demo` records the
# bundled demo program; `make bench` runs the benchmarks in tools/. What ships: `make static` (one
# self-contained binary), `make install` (PREFIX, DESTDIR), `make deb`, `make dist` (the tarball).

CC       ?= cc
CLANG    ?= clang
BPFTOOL  ?= bpftool
PROTOC_C ?= protoc-c
ARCH     := x86
PREFIX   ?= /usr/local

BUILD    := build
GEN      := $(BUILD)/gen
CFLAGS   ?= -O2 -g
# user/ is grouped by stage: cmd (the commands) over attach (BPF, the event loop), goproc (the Go
# binary and the live process), model (accounting, no I/O), out (renderers) and util.
USER_DIRS := cmd attach goproc model out util
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude $(addprefix -Iuser/,$(USER_DIRS)) \
	    -I$(GEN)
LDLIBS   := -lbpf -ldw -lelf -lz -lprotobuf-c -lcapstone -ljson-c -lmicrohttpd -lcurl -lpthread -lm
# The static binary also takes the compressors libdw's archive calls (its shared library brings them
# along by itself). It leaves `heapspy serve` out: Debian 12's libmicrohttpd and libcurl are built
# with GnuTLS, whose p11-kit has no static archive.
STATIC_LDLIBS := $(filter-out -lmicrohttpd -lcurl,$(LDLIBS)) -lzstd -llzma -lbz2
SERVE_SRCS := user/cmd/serve.c user/cmd/servetarget.c user/cmd/serveroute.c user/cmd/push.c

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS    := $(patsubst bpf/%.bpf.c,$(GEN)/%.skel.h,$(BPF_SRCS))
PROTO_C  := $(GEN)/profile.pb-c.c

# Every user/*/*.c but the CLI entry point is a library module that unit tests link against.
LIB_SRCS := $(filter-out user/cmd/main.c,$(wildcard $(addprefix user/,$(addsuffix /*.c,$(USER_DIRS))))) \
	    $(PROTO_C)
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

# Unit tests and fuzzers link against one archive of the library modules built with clang, ASan
# and UBSan; fuzzer-no-link adds libFuzzer's coverage without its main, so the same objects serve
# both (outside a fuzzer the sanitizer runtime's empty coverage hooks take the calls).
SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_CFLAGS := $(filter-out -O2,$(CFLAGS)) -O1 $(SAN)
SAN_LIB  := $(BUILD)/san/libheapspy.a
SAN_OBJS := $(patsubst %.c,$(BUILD)/san/%.o,$(LIB_SRCS))
# Generated headers every C file may include; each object's real header dependencies come from
# the compiler (-MMD), so a changed header rebuilds exactly what includes it. Objects depend on the
# Makefile too: its flags are part of them.
GEN_HDRS := $(SKELS) $(GEN)/profile.pb-c.h
DEPFLAGS := -MMD -MP

.PHONY: all static install deb dist clean test unit fuzz demo bench format deps
# Keep the BPF objects and skeletons between builds (make would delete them as intermediates).
.SECONDARY:
all: $(BUILD)/heapspy

deps:
	./tools/install-deps

$(GEN) $(BUILD)/unit $(BUILD)/fuzz:
	mkdir -p $@

$(GEN)/profile.pb-c.c $(GEN)/profile.pb-c.h: proto/profile.proto | $(GEN)
	$(PROTOC_C) --proto_path=proto --c_out=$(GEN) proto/profile.proto

# tools/pipebench.bpf.c, the pipeline benchmark's producer, is built like the probes.
vpath %.bpf.c bpf tools
$(BUILD)/%.bpf.o: %.bpf.c bpf/*.h include/*.h | $(GEN)
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Iinclude -Ibpf -Ivmlinux -c $< -o $@

$(GEN)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/obj/%.o: %.c Makefile | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c Makefile | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CLANG) $(SAN_CFLAGS) -fsanitize=fuzzer-no-link $(DEPFLAGS) -c $< -o $@

$(SAN_LIB): $(SAN_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/heapspy: $(LIB_OBJS) $(BUILD)/obj/user/cmd/main.o
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# One self-contained binary for hosts without the libraries: the BPF objects are in it already (the
# skeletons embed them).
static: $(BUILD)/heapspy-static
STATIC_OBJS := $(filter-out $(patsubst %.c,$(BUILD)/obj/%.o,$(SERVE_SRCS)),$(LIB_OBJS))
$(BUILD)/heapspy-static: $(STATIC_OBJS) $(BUILD)/obj/user/cmd/main-static.o
	$(CC) $(CFLAGS) -static $^ -o $@ $(STATIC_LDLIBS)

$(BUILD)/obj/user/cmd/main-static.o: user/cmd/main.c Makefile | $(GEN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DHEAPSPY_NO_SERVE $(DEPFLAGS) -c $< -o $@

# The manual is generated from the binary's own --help, so it says what this build does. Tests
# that install and package may make it at once: each writes its own file and renames it.
$(BUILD)/heapspy.1: $(BUILD)/heapspy tools/manpage
	tools/manpage $< > $@.$$$$ && mv $@.$$$$ $@

install: $(BUILD)/heapspy $(BUILD)/heapspy.1
	install -D -m 755 $(BUILD)/heapspy $(DESTDIR)$(PREFIX)/bin/heapspy
	install -D -m 644 $(BUILD)/heapspy.1 $(DESTDIR)$(PREFIX)/share/man/man1/heapspy.1
	install -D -m 644 tools/heapspy.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/heapspy

# The Debian package holds the dynamic build; its Depends are the libraries that build links.
deb: $(BUILD)/heapspy.deb
$(BUILD)/heapspy.deb: $(BUILD)/heapspy $(BUILD)/heapspy.1 tools/heapspy.bash tools/deb
	rm -rf $(BUILD)/deb
	$(MAKE) install DESTDIR=$(BUILD)/deb/debian/heapspy PREFIX=/usr
	tools/deb $(BUILD)/deb $@

# The release tarball: the static binary, its manual, the README and their checksums.
VERSION  := $(shell sed -n 's/^\#define HEAPSPY_VERSION "\(.*\)"/\1/p' user/cmd/main.c)
DIST     := heapspy-$(VERSION)-linux-x86_64
dist: $(BUILD)/$(DIST).tar.gz
$(BUILD)/$(DIST).tar.gz: $(BUILD)/heapspy-static $(BUILD)/heapspy.1 README.md
	rm -rf $(BUILD)/$(DIST)
	mkdir -p $(BUILD)/$(DIST)
	cp $(BUILD)/heapspy-static $(BUILD)/$(DIST)/heapspy
	cp $(BUILD)/heapspy.1 README.md $(BUILD)/$(DIST)/
	cd $(BUILD)/$(DIST) && sha256sum heapspy heapspy.1 README.md > SHA256SUMS
	tar -C $(BUILD) --owner=0 --group=0 --sort=name -czf $@ $(DIST)

$(BUILD)/unit/%: tests/unit/%.c $(SAN_LIB) | $(GEN_HDRS) $(BUILD)/unit
	$(CLANG) $(SAN_CFLAGS) $(DEPFLAGS) $< $(SAN_LIB) -o $@ $(LDLIBS)

$(BUILD)/fuzz/%: tests/fuzz/%.c $(SAN_LIB) | $(GEN_HDRS) $(BUILD)/fuzz
	$(CLANG) $(SAN_CFLAGS) -fsanitize=fuzzer $(DEPFLAGS) $< $(SAN_LIB) -o $@ $(LDLIBS)

$(BUILD)/obj/tools/pipebench.o: $(GEN)/pipebench.skel.h

$(BUILD)/pipebench: $(LIB_OBJS) $(BUILD)/obj/tools/pipebench.o
	$(CC) $(CFLAGS) -pthread $^ -o $@ $(LDLIBS)

unit: $(UNIT_BINS)
fuzz: $(FUZZ_BINS)

-include $(patsubst %.o,%.d,$(LIB_OBJS) $(SAN_OBJS) $(BUILD)/obj/user/cmd/main.o \
	   $(BUILD)/obj/user/cmd/main-static.o \
	   $(BUILD)/obj/tools/pipebench.o) $(patsubst %,%.d,$(UNIT_BINS) $(FUZZ_BINS))

# deps is a no-op once everything is installed, so the quick start works on a fresh machine.
test: deps
	$(MAKE) -j$$(nproc) all static unit fuzz
	python3 tests/run.py

# The demo needs one Go toolchain, not every one the tests build with.
demo:
	./tools/install-deps --demo
	$(MAKE) all
	./tools/demo

bench: deps
	$(MAKE) all $(BUILD)/pipebench
	python3 tools/bench.py

format:
	clang-format -i bpf/*.c user/*/*.c user/*/*.h include/*.h tests/unit/*.c tests/fuzz/*.c tools/*.c

clean:
	rm -rf $(BUILD)
