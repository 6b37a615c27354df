# corral: a plain GNU Makefile (redis style).
#
#   make                  build bin/corrald and bin/corral
#   make deps             install the Debian packages the project needs
#   make run              deps + build + run a one-member corral in .run/
#   make test             deps + -Werror build + format-check + unit (plain
#                         and ASan+UBSan) + integration tests
#   make SANITIZE=address ASan+UBSan build (into build/asan)
#   make DEBUG=1          -O0 build with full debug info
#   make format           clang-format every C file in place
#   make bench            build and run the benchmarks

SHELL := /bin/bash
CC ?= cc
PYTHON := /usr/bin/python3

# Debian packages: build, run and test dependencies.
DEB_PKGS := build-essential pkg-config clang-format libuv1-dev \
	libdqlite-dev libraft-dev libsqlite3-dev libssl-dev libmsgpack-dev \
	libjansson-dev libhttp-parser-dev libwslay-dev libyaml-dev openssl \
	libcmocka-dev libclang-rt-14-dev valgrind iproute2 nftables \
	libnftables-dev python3 python3-pytest python3-cryptography \
	python3-requests python3-requests-unixsocket lxd-client python3-pylxd

ifeq ($(SANITIZE),address)
VARIANT := asan
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
else
VARIANT := default
SAN_FLAGS :=
endif

ifeq ($(DEBUG),1)
OPT := -O0 -g3
HARDEN := -fstack-protector-strong -fstack-clash-protection
else
OPT := -O2 -g
HARDEN := -fstack-protector-strong -fstack-clash-protection \
	-D_FORTIFY_SOURCE=2
endif

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Wvla -Wimplicit-fallthrough
ifeq ($(WERROR),1)
WARN += -Werror
endif

PKG_CFLAGS := $(shell pkg-config --cflags libuv jansson openssl dqlite \
	sqlite3 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs libuv jansson openssl dqlite sqlite3 \
	2>/dev/null)
LIBS := $(PKG_LIBS) -lhttp_parser -lwslay -lyaml -lmsgpackc -lpthread -lm

CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -Iinclude $(OPT) $(WARN) $(HARDEN) \
	$(SAN_FLAGS) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := -Wl,-z,relro,-z,now $(SAN_FLAGS) $(LDFLAGS)

B := build/$(VARIANT)
LIB_SRC := $(sort $(wildcard node/*.c state/*.c cluster/*.c api/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
LIB := $(B)/libcorral.a
CORRALD_SRC := $(wildcard cmd/corrald/*.c)
CORRAL_SRC := $(wildcard cmd/corral/*.c)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
UNIT_HELPERS := $(wildcard tests/unit/lib/*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)

ifeq ($(VARIANT),default)
BIN_DIR := bin
else
BIN_DIR := $(B)/bin
endif

.PHONY: all deps run test unit unit-asan integration format format-check \
	bench clean

all: $(BIN_DIR)/corrald $(BIN_DIR)/corral

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN_DIR)/corrald: $(CORRALD_SRC:%.c=$(B)/obj/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BIN_DIR)/corral: $(CORRAL_SRC:%.c=$(B)/obj/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

# Unit tests see the modules' internal headers and may relax -Wconversion.
$(B)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-conversion -Inode -Istate -Icluster -Iapi \
		-Itests/unit/lib $(LDFLAGS_ALL) -o $@ $< $(UNIT_HELPERS) \
		$(LIB) $(LIBS) -lcmocka

$(B)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-conversion -Inode -Iapi $(LDFLAGS_ALL) \
		-o $@ $< $(LIB) $(LIBS)

-include $(LIB_OBJ:.o=.d)

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "deps: every package is installed"; \
	fi

run: deps all
	@echo "corral: starting a one-member corral in $(CURDIR)/.run"
	@echo "From another shell:"
	@echo "  CORRAL_DIR=$(CURDIR)/.run bin/corral info"
	@echo "  curl --unix-socket .run/unix.socket http://x/1.0"
	exec bin/corrald --state-dir $(CURDIR)/.run --debug

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

unit-asan:
	$(MAKE) SANITIZE=address WERROR=1 unit

integration: all
	$(PYTHON) -m pytest -q -ra tests/integration
	$(PYTHON) -m pytest -q -ra tests/cluster

test: deps
	$(MAKE) WERROR=1 all
	$(MAKE) format-check
	$(MAKE) WERROR=1 unit
	$(MAKE) unit-asan
	$(MAKE) integration

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null; \
	git ls-files --others --exclude-standard '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(C_FILES)

format-check:
	@clang-format --dry-run -Werror $(C_FILES) && echo "format-check: ok"

bench: all $(BENCH_BIN)
	$(PYTHON) tests/bench/run.py

clean:
	rm -rf build bin
