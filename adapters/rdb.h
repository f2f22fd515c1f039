/*
 * rdb.h: checks of a Redis RDB file before any node may load it.
 *
 * An RDB file starts with "REDIS" and a four-digit version and ends with
 * the EOF opcode 0xFF and the CRC-64 (Jones polynomial, reflected, as
 * Redis computes it) of every byte before the checksum, little-endian.
 * rdb_check() verifies both and walks the opcodes in between: auxiliary
 * fields (redis-ver, repl-id, repl-offset), SELECTDB and RESIZEDB, and the
 * values themselves, so that the keys of each database are counted.
 */
#ifndef ROTATOR_RDB_H
#define ROTATOR_RDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rotator/util.h"

#define RDB_MAX_DBS 64

struct rdb_db {
	int64_t db;		/* database number from SELECTDB */
	bool resized;		/* a RESIZEDB gave the two counts below */
	int64_t resize_keys;	/* keys, as RESIZEDB says */
	int64_t resize_expires; /* keys with an expiry, as RESIZEDB says */
	int64_t keys;		/* keys counted by parsing */
};

struct rdb_info {
	int version;	     /* RDB format version, 10 for Redis 7.0 */
	char redis_ver[32];  /* aux "redis-ver", "" when absent */
	char repl_id[41];    /* aux "repl-id", "" when absent */
	int64_t repl_offset; /* aux "repl-offset", -1 when absent */
	int64_t repl_db;     /* aux "repl-stream-db", -1 when absent */
	uint64_t crc64;	     /* the checksum stored at the end */
	int n_dbs;	     /* databases seen */
	struct rdb_db dbs[RDB_MAX_DBS];
	bool counted;	     /* every value was parsed: keys are exact */
	char uncounted[128]; /* why not, when !counted */
};

/*
 * Redis's CRC-64 of LEN bytes at BUF, continuing from CRC (0 to start).
 * The check value of "123456789" is 0xe9c6d914c4b8d9ca.
 */
uint64_t rdb_crc64(uint64_t crc, const void *buf, size_t len);

/*
 * Check the LEN bytes of an RDB file at BUF: header, end marker, CRC-64
 * and the structure of what lies between, filling INFO.  Returns 0, or
 * -1 after writing the reason into ERR.  A value of a type this parser
 * does not know is not a failure: INFO->counted is then false.
 */
int rdb_check(const unsigned char *buf, size_t len, struct rdb_info *info,
	      char *err, size_t errlen) WUR;

/*
 * rdb_check() on the file at PATH, with its SHA-256 into SHA and its size
 * into SIZE.  Returns 0, or -1 after writing the reason into ERR.
 */
int rdb_check_file(const char *path, struct rdb_info *info,
		   char sha[SHA256_HEX_LEN + 1], uint64_t *size, char *err,
		   size_t errlen) WUR;

#endif
