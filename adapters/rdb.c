/*
 * rdb.c: the checks of an RDB file (see rdb.h).
 *
 * The walk follows the format of Redis 7 (RDB versions up to 11): it
 * reads each length, string and value only to step over it, never builds
 * anything, and never reads past the end of the buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "adapters/rdb.h"

/* The Jones polynomial 0xad93d23594c935a9, bit-reversed. */
#define CRC64_POLY 0x95ac9329ac4bc9b5ULL

#define OP_SLOT_INFO 0xF4
#define OP_FUNCTION2 0xF5
#define OP_FUNCTION_PRE_GA 0xF6
#define OP_MODULE_AUX 0xF7
#define OP_IDLE 0xF8
#define OP_FREQ 0xF9
#define OP_AUX 0xFA
#define OP_RESIZEDB 0xFB
#define OP_EXPIRETIME_MS 0xFC
#define OP_EXPIRETIME 0xFD
#define OP_SELECTDB 0xFE
#define OP_EOF 0xFF

static uint64_t crc64_table[256];
static pthread_once_t crc64_once = PTHREAD_ONCE_INIT;

static void crc64_init(void)
{
	for (int i = 0; i < 256; i++) {
		uint64_t c = (uint64_t)i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC64_POLY : c >> 1;
		crc64_table[i] = c;
	}
}

uint64_t rdb_crc64(uint64_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	pthread_once(&crc64_once, crc64_init);
	while (len--)
		crc = crc64_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* A read position in the buffer; BAD once anything ran past END. */
struct cursor {
	const unsigned char *start, *p, *end;
	bool bad;
};

static bool take(struct cursor *c, size_t n)
{
	if (c->bad || (size_t)(c->end - c->p) < n) {
		c->bad = true;
		return false;
	}
	c->p += n;
	return true;
}

static int byte_at(struct cursor *c)
{
	if (!take(c, 1))
		return -1;
	return c->p[-1];
}

/*
 * A length.  *ENCODED is set when it is instead the tag of a specially
 * encoded string (an integer or LZF data).
 */
static uint64_t read_len(struct cursor *c, bool *encoded)
{
	int b = byte_at(c);
	uint64_t v = 0;

	if (encoded)
		*encoded = false;
	if (b < 0)
		return 0;
	switch (b >> 6) {
	case 0:
		return (uint64_t)(b & 0x3f);
	case 1:
		v = (uint64_t)(b & 0x3f) << 8;
		return take(c, 1) ? v | c->p[-1] : 0;
	case 3:
		if (encoded)
			*encoded = true;
		else
			c->bad = true;
		return (uint64_t)(b & 0x3f);
	}
	if (b != 0x80 && b != 0x81) {
		c->bad = true;
		return 0;
	}
	if (!take(c, b == 0x80 ? 4 : 8))
		return 0;
	for (const unsigned char *q = c->p - (b == 0x80 ? 4 : 8); q < c->p; q++)
		v = (v << 8) | *q;
	return v;
}

/*
 * Step over a string; with OUT (LEN bytes), copy a plain or integer
 * string there as text.
 */
static void read_string(struct cursor *c, char *out, size_t len)
{
	static const size_t int_sizes[] = {1, 2, 4};
	bool encoded;
	uint64_t n = read_len(c, &encoded);

	if (out)
		out[0] = '\0';
	if (!encoded) {
		if (n > (uint64_t)(c->end - c->p)) {
			c->bad = true;
			return;
		}
		if (out)
			snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1),
				 (const char *)c->p);
		take(c, (size_t)n);
	} else if (n < 3) {
		const unsigned char *q = c->p;
		int64_t v;

		if (!take(c, int_sizes[n]))
			return;
		v = n == 0   ? (int8_t)q[0]
		    : n == 1 ? (int16_t)(q[0] | q[1] << 8)
			     : (int32_t)((uint32_t)q[0] | (uint32_t)q[1] << 8 |
					 (uint32_t)q[2] << 16 |
					 (uint32_t)q[3] << 24);
		if (out)
			snprintf(out, len, "%" PRId64, v);
	} else if (n == 3) {
		uint64_t clen = read_len(c, NULL);

		read_len(c, NULL); /* uncompressed length */
		if (clen > (uint64_t)(c->end - c->p))
			c->bad = true;
		else
			take(c, (size_t)clen);
	} else {
		c->bad = true;
	}
}

static void skip_strings(struct cursor *c, uint64_t n)
{
	for (uint64_t i = 0; i < n && !c->bad; i++)
		read_string(c, NULL, 0);
}

static void skip_lens(struct cursor *c, int n)
{
	for (int i = 0; i < n && !c->bad; i++)
		read_len(c, NULL);
}

/* A double written as text: a length byte, or 253-255 for nan, +-inf. */
static void skip_text_double(struct cursor *c)
{
	int n = byte_at(c);

	if (n >= 0 && n < 253)
		take(c, (size_t)n);
}

/* The typed fields of a module value or module aux, up to EOF (0). */
static void skip_module_fields(struct cursor *c)
{
	for (;;) {
		uint64_t op = read_len(c, NULL);

		if (c->bad || op == 0)
			return;
		if (op == 1 || op == 2)
			read_len(c, NULL);
		else if (op == 3)
			take(c, 4);
		else if (op == 4)
			take(c, 8);
		else if (op == 5)
			read_string(c, NULL, 0);
		else
			c->bad = true;
	}
}

/* Consumer groups of a stream; TYPE is 15, 19 or 21. */
static void skip_stream_groups(struct cursor *c, int type)
{
	uint64_t groups = read_len(c, NULL);

	for (uint64_t g = 0; g < groups && !c->bad; g++) {
		uint64_t pel, consumers;

		read_string(c, NULL, 0);
		skip_lens(c, type >= 19 ? 3 : 2);
		pel = read_len(c, NULL);
		for (uint64_t i = 0; i < pel && !c->bad; i++) {
			take(c, 16 + 8);
			read_len(c, NULL);
		}
		consumers = read_len(c, NULL);
		for (uint64_t i = 0; i < consumers && !c->bad; i++) {
			read_string(c, NULL, 0);
			take(c, type >= 21 ? 16 : 8);
			pel = read_len(c, NULL);
			if (pel > (uint64_t)(c->end - c->p) / 16)
				c->bad = true;
			else
				take(c, (size_t)pel * 16);
		}
	}
}

static void skip_stream(struct cursor *c, int type)
{
	uint64_t n = read_len(c, NULL);

	for (uint64_t i = 0; i < n && !c->bad; i++)
		skip_strings(c, 2);
	skip_lens(c, type >= 19 ? 8 : 3);
	skip_stream_groups(c, type);
}

/*
 * Step over a value of TYPE.  Returns false for a type this parser does
 * not know (the walk then stops counting), true otherwise; C->bad tells
 * whether the value ran past the end.
 */
static bool skip_value(struct cursor *c, int type)
{
	uint64_t n;

	switch (type) {
	case 0: /* string */
	case 9: /* zipmap, ziplist, intset and listpack encodings */
	case 10:
	case 11:
	case 12:
	case 13:
	case 16:
	case 17:
	case 20:
		read_string(c, NULL, 0);
		return true;
	case 1: /* list, set, quicklist */
	case 2:
	case 14:
		skip_strings(c, read_len(c, NULL));
		return true;
	case 4: /* hash */
		n = read_len(c, NULL);
		skip_strings(c, n > UINT64_MAX / 2 ? UINT64_MAX : 2 * n);
		return true;
	case 3: /* zset with text scores */
	case 5: /* zset with binary scores */
		n = read_len(c, NULL);
		for (uint64_t i = 0; i < n && !c->bad; i++) {
			read_string(c, NULL, 0);
			if (type == 3)
				skip_text_double(c);
			else
				take(c, 8);
		}
		return true;
	case 7: /* module, version 2 */
		read_len(c, NULL);
		skip_module_fields(c);
		return true;
	case 15: /* streams */
	case 19:
	case 21:
		skip_stream(c, type);
		return true;
	case 18: /* quicklist of listpacks */
		n = read_len(c, NULL);
		for (uint64_t i = 0; i < n && !c->bad; i++) {
			read_len(c, NULL);
			read_string(c, NULL, 0);
		}
		return true;
	}
	return false;
}

static struct rdb_db *current_db(struct rdb_info *info, int64_t db)
{
	for (int i = 0; i < info->n_dbs; i++)
		if (info->dbs[i].db == db)
			return &info->dbs[i];
	if (info->n_dbs == RDB_MAX_DBS)
		return NULL;
	info->dbs[info->n_dbs] = (struct rdb_db){.db = db};
	return &info->dbs[info->n_dbs++];
}

static void read_aux(struct cursor *c, struct rdb_info *info)
{
	char key[32], value[64];

	read_string(c, key, sizeof(key));
	read_string(c, value, sizeof(value));
	if (c->bad)
		return;
	if (strcmp(key, "redis-ver") == 0)
		snprintf(info->redis_ver, sizeof(info->redis_ver), "%s", value);
	else if (strcmp(key, "repl-id") == 0)
		snprintf(info->repl_id, sizeof(info->repl_id), "%s", value);
	else if (strcmp(key, "repl-offset") == 0)
		info->repl_offset = strtoll(value, NULL, 10);
	else if (strcmp(key, "repl-stream-db") == 0)
		info->repl_db = strtoll(value, NULL, 10);
}

/*
 * One opcode or key-value pair at C.  Returns 1 at the EOF opcode, 0 to
 * go on, -1 when counting must stop (INFO->uncounted says why).
 */
static int walk_one(struct cursor *c, struct rdb_info *info, struct rdb_db **db)
{
	int op = byte_at(c);

	switch (op) {
	case -1:
		return 0;
	case OP_EOF:
		return 1;
	case OP_AUX:
		read_aux(c, info);
		return 0;
	case OP_SELECTDB:
		*db = current_db(info, (int64_t)read_len(c, NULL));
		if (!*db) {
			snprintf(info->uncounted, sizeof(info->uncounted),
				 "more than %d databases", RDB_MAX_DBS);
			return -1;
		}
		return 0;
	case OP_RESIZEDB:
		if (!*db)
			*db = current_db(info, 0);
		(*db)->resized = true;
		(*db)->resize_keys = (int64_t)read_len(c, NULL);
		(*db)->resize_expires = (int64_t)read_len(c, NULL);
		return 0;
	case OP_EXPIRETIME:
		take(c, 4);
		return 0;
	case OP_EXPIRETIME_MS:
		take(c, 8);
		return 0;
	case OP_FREQ:
		take(c, 1);
		return 0;
	case OP_IDLE:
		read_len(c, NULL);
		return 0;
	case OP_MODULE_AUX:
		skip_lens(c, 3);
		skip_module_fields(c);
		return 0;
	case OP_FUNCTION2:
		read_string(c, NULL, 0);
		return 0;
	case OP_SLOT_INFO:
		skip_lens(c, 3);
		return 0;
	}
	read_string(c, NULL, 0); /* the key */
	if (!skip_value(c, op)) {
		snprintf(info->uncounted, sizeof(info->uncounted),
			 "value type %d at offset %td is not known", op,
			 c->p - c->start);
		return -1;
	}
	if (!*db)
		*db = current_db(info, 0);
	(*db)->keys++;
	return 0;
}

/* Walk from after the header to the EOF opcode that must be at END. */
static int walk(struct cursor *c, struct rdb_info *info, char *err,
		size_t errlen)
{
	struct rdb_db *db = NULL;
	int rc;

	while ((rc = walk_one(c, info, &db)) == 0 && !c->bad)
		;
	if (c->bad) {
		snprintf(err, errlen,
			 "RDB is malformed: it ends in the middle "
			 "of a record");
		return -1;
	}
	if (rc == 1 && c->p != c->end) {
		snprintf(err, errlen,
			 "RDB is malformed: end marker at offset %td, not at "
			 "the end",
			 c->p - 1 - c->start);
		return -1;
	}
	info->counted = rc == 1;
	return 0;
}

int rdb_check(const unsigned char *buf, size_t len, struct rdb_info *info,
	      char *err, size_t errlen)
{
	struct cursor c;
	uint64_t stored = 0, crc;

	memset(info, 0, sizeof(*info));
	info->repl_offset = -1;
	info->repl_db = -1;
	if (len < 9 + 1 + 8 || memcmp(buf, "REDIS", 5) != 0) {
		snprintf(err, errlen, "not an RDB file (%zu bytes)", len);
		return -1;
	}
	info->version = atoi((const char *)buf + 5) % 10000;
	if (info->version < 5) {
		snprintf(err, errlen, "RDB version %d has no checksum",
			 info->version);
		return -1;
	}
	if (buf[len - 9] != OP_EOF) {
		snprintf(err, errlen,
			 "RDB has no end marker: byte %zu is "
			 "0x%02x, not 0xff",
			 len - 9, buf[len - 9]);
		return -1;
	}
	for (int i = 7; i >= 0; i--)
		stored = (stored << 8) | buf[len - 8 + (size_t)i];
	crc = rdb_crc64(0, buf, len - 8);
	info->crc64 = stored;
	if (stored != crc) {
		snprintf(err, errlen,
			 "RDB checksum is %016" PRIx64 ", the data gives "
			 "%016" PRIx64,
			 stored, crc);
		return -1;
	}
	c = (struct cursor){.start = buf, .p = buf + 9, .end = buf + len - 8};
	return walk(&c, info, err, errlen);
}

static void hash_hex(const unsigned char *buf, size_t len,
		     char sha[SHA256_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < mdlen; i++)
		sprintf(sha + 2 * i, "%02x", md[i]);
}

int rdb_check_file(const char *path, struct rdb_info *info,
		   char sha[SHA256_HEX_LEN + 1], uint64_t *size, char *err,
		   size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *map;
	int rc;

	if (fd == -1 || fstat(fd, &st) == -1) {
		snprintf(err, errlen, "could not open \"%s\": %s", path,
			 strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	if (st.st_size == 0) {
		close(fd);
		snprintf(err, errlen, "\"%s\" is empty", path);
		return -1;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "could not map \"%s\": %s", path,
			 strerror(errno));
		return -1;
	}
	hash_hex(map, (size_t)st.st_size, sha);
	rc = rdb_check(map, (size_t)st.st_size, info, err, errlen);
	munmap(map, (size_t)st.st_size);
	return rc;
}
