# rotator: build, check, demo, install.
#
#   make              build bin/rotator and the test programs
#   make check        install what the tests need, build, run every test
#   make demo         rotate a PostgreSQL and a Redis cluster under writers
#   make bench        measure rotations beside baselines (QUICK=1: smaller)
#   make SANITIZE=1   AddressSanitizer and UBSan build
#   make V=1          show full command lines

CC ?= cc
CFLAGS ?= -O2 -g
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin

PKGS = libpq libevent libevent_pthreads jansson libcrypto hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
       -Wmissing-prototypes -Wstrict-prototypes -Wno-format-truncation
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -I. $(PKG_CFLAGS) \
	     $(CFLAGS)
ALL_LDFLAGS = $(LDFLAGS)
LIBS = $(PKG_LIBS) -lpthread

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=address,undefined
endif

ifneq ($(V),1)
Q = @
QCC = @echo "  CC      $@";
QLD = @echo "  LINK    $@";
endif

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
ALL_CFLAGS += -DROTATOR_VERSION='"$(VERSION)"'

CORE_SRC = rotator/log.c rotator/util.c rotator/config.c rotator/audit.c \
	   rotator/journal.c rotator/endpoint.c rotator/provisioner.c \
	   rotator/rotation.c rotator/cluster.c rotator/api.c \
	   rotator/httpc.c rotator/daemon.c rotator/cli.c rotator/sentinel.c \
	   adapters/adapter.c adapters/postgres.c adapters/redis.c \
	   adapters/rdb.c \
	   snapshots/manifest.c snapshots/store.c snapshots/copy.c
MAIN_SRC = rotator/main.c
CORE_OBJ = $(CORE_SRC:%.c=build/%.o)
MAIN_OBJ = $(MAIN_SRC:%.c=build/%.o)

UNIT_TESTS = test_config test_audit test_journal test_endpoint test_manifest \
	     test_cluster test_rdb test_sentinel test_copy
UNIT_BIN = $(UNIT_TESTS:%=build/tests/%)
TOOLS = build/tests/pgwriter build/tests/rediswriter

all: bin/rotator $(UNIT_BIN) $(TOOLS)

bin/rotator: $(CORE_OBJ) $(MAIN_OBJ)
	@mkdir -p $(dir $@)
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(QCC)$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/tests/test_%: build/tests/test_%.o $(CORE_OBJ)
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(CMOCKA_LIBS)

build/tests/pgwriter: build/tests/pgwriter.o build/rotator/util.o
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

build/tests/rediswriter: build/tests/rediswriter.o build/rotator/util.o
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

deps:
	@sh tests/deps.sh

check: deps
	$(MAKE) all
	@sh tests/run.sh

unit: all
	@sh tests/run.sh unit

demo: deps
	$(MAKE) all
	@sh deploy/demo.sh

format-check:
	@clang-format --dry-run --Werror $(CORE_SRC) $(MAIN_SRC) \
		$(wildcard rotator/*.h adapters/*.h snapshots/*.h tests/*.c)

install: bin/rotator
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 bin/rotator $(DESTDIR)$(BINDIR)/rotator

clean:
	rm -rf build bin

.PHONY: all deps check unit demo format-check install clean

# bench: rotations and fresh nodes measured beside baselines of the same
# run; one table on the screen, the figures in bench/results/.
build/bench/probe: build/bench/probe.o
	$(QLD)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

bench: deps
	$(MAKE) all build/bench/probe
	@QUICK=$(QUICK) bash bench/run.sh

.PHONY: bench

-include $(shell find build -name '*.d' 2>/dev/null)
