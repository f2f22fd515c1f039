/*
 * audit.c: the append-only, hash-chained audit log declared in audit.h.
 *
 * Each line is hashed as it lies on disk, so verification never
 * re-serialises JSON: any changed byte changes the hash that the next line
 * (or, for the last line, the head file) has recorded.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rotator/audit.h"
#include "rotator/log.h"

#define AUDIT_MODE 0600

static const char zero_hash[SHA256_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

static const char *const reserved_keys[] = {
	"seq", "time", "prev", "event", "cluster",
};

struct audit {
	pthread_mutex_t lock;
	char *path;
	char *head_path;
	int fd;
	uint64_t seq;		       /* of the last line, 0 if none */
	char hash[SHA256_HEX_LEN + 1]; /* of the last line, or zeros */
};

/* The end of the chain: the last line's number and hash. */
struct chain_tip {
	uint64_t seq;
	char hash[SHA256_HEX_LEN + 1];
};

static char *head_path_of(const char *path)
{
	return xasprintf("%s.head", path);
}

/*
 * Check the next line (LINE, LEN bytes without its newline) against TIP,
 * the end of the chain so far.  Returns 0, or -1 after writing into ERR.
 */
static int check_line(const char *line, size_t len, const struct chain_tip *tip,
		      char *err, size_t errlen)
{
	unsigned long long n = tip->seq + 1;
	json_error_t jerr;
	json_t *entry, *seq, *prev;
	int rc = -1;

	entry = json_loadb(line, len, 0, &jerr);
	if (!entry) {
		snprintf(err, errlen, "line %llu: not valid JSON: %s", n,
			 jerr.text);
		return -1;
	}
	seq = json_object_get(entry, "seq");
	prev = json_object_get(entry, "prev");
	if (!json_is_object(entry)) {
		snprintf(err, errlen, "line %llu: not a JSON object", n);
	} else if (!json_is_integer(seq)) {
		snprintf(err, errlen, "line %llu: no sequence number", n);
	} else if (json_integer_value(seq) < 0 ||
		   (uint64_t)json_integer_value(seq) != n) {
		snprintf(
			err, errlen,
			"line %llu: sequence number %lld where %llu was expected",
			n, (long long)json_integer_value(seq), n);
	} else if (!json_is_string(prev) ||
		   strcmp(json_string_value(prev), tip->hash) != 0) {
		if (n == 1)
			snprintf(
				err, errlen,
				"line 1: prev is not the 64 zeros that start the chain");
		else
			snprintf(
				err, errlen,
				"line %llu: prev does not match the hash of line %llu",
				n, n - 1);
	} else if (!json_is_string(json_object_get(entry, "event"))) {
		snprintf(err, errlen, "line %llu: no event name", n);
	} else {
		rc = 0;
	}
	json_decref(entry);
	return rc;
}

/*
 * Walk the log in BUF (LEN bytes), advancing TIP line by line.  Returns 0,
 * or -1 after writing into ERR the first line that does not fit.
 */
static int check_lines(const char *buf, size_t len, struct chain_tip *tip,
		       char *err, size_t errlen)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t line_len;

		if (!nl) {
			snprintf(err, errlen, "line %llu: truncated",
				 (unsigned long long)tip->seq + 1);
			return -1;
		}
		line_len = (size_t)(nl - (buf + pos));
		if (check_line(buf + pos, line_len, tip, err, errlen) == -1)
			return -1;
		sha256_hex(buf + pos, line_len, tip->hash);
		tip->seq++;
		pos += line_len + 1;
	}
	return 0;
}

/*
 * Compare the head file at HEAD_PATH with TIP, the end of the log as read.
 * Returns 0, or -1 after writing into ERR.
 */
static int check_head(const char *head_path, const struct chain_tip *tip,
		      char *err, size_t errlen)
{
	json_t *head, *seq, *hash;
	json_error_t jerr;
	unsigned long long recorded, lines = tip->seq;
	int rc = -1;

	head = json_load_file(head_path, 0, &jerr);
	if (!head && access(head_path, F_OK) == -1 && errno == ENOENT) {
		if (tip->seq == 0)
			return 0;
		snprintf(err, errlen, "head file \"%s\" is missing", head_path);
		return -1;
	}
	seq = json_object_get(head, "seq");
	hash = json_object_get(head, "hash");
	if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
	    !json_is_string(hash)) {
		snprintf(err, errlen, "could not parse head file \"%s\": %s",
			 head_path, head ? "no seq and hash" : jerr.text);
		goto done;
	}
	recorded = (unsigned long long)json_integer_value(seq);
	if (recorded > lines)
		snprintf(
			err, errlen,
			"line %llu: missing: the head records %llu lines but the log has %llu",
			lines + 1, recorded, lines);
	else if (recorded < lines)
		snprintf(err, errlen,
			 "line %llu: not in the head, which records %llu lines",
			 recorded + 1, recorded);
	else if (strcmp(json_string_value(hash), tip->hash) != 0)
		snprintf(err, errlen, "line %llu: hash does not match the head",
			 lines);
	else
		rc = 0;
done:
	json_decref(head);
	return rc;
}

/*
 * Verify the log at PATH and its head, leaving the end of the chain in
 * TIP.  An absent log counts as empty.  Returns 0, or -1 after writing
 * into ERR.
 */
static int check_log(const char *path, struct chain_tip *tip, char *err,
		     size_t errlen)
{
	char *head_path = head_path_of(path);
	char *buf;
	size_t len = 0;
	int rc = -1;

	tip->seq = 0;
	memcpy(tip->hash, zero_hash, sizeof(tip->hash));
	buf = read_file(path, &len);
	if (!buf && errno != ENOENT) {
		snprintf(err, errlen, "could not read \"%s\": %s", path,
			 strerror(errno));
		goto done;
	}
	if (check_lines(buf, len, tip, err, errlen) == -1)
		goto done;
	rc = check_head(head_path, tip, err, errlen);
done:
	free(buf);
	free(head_path);
	return rc;
}

int audit_verify(const char *path, uint64_t *n_lines, char *err, size_t errlen)
{
	struct chain_tip tip;

	if (check_log(path, &tip, err, errlen) == -1)
		return -1;
	if (n_lines)
		*n_lines = tip.seq;
	return 0;
}

/*
 * Bring the head forward over LAST (the whole, verified last line, LEN
 * bytes) when it is exactly one line behind it: the mark of a crash
 * between the sync of the line and the rename of the head.
 */
static void settle_head(const char *path, const struct chain_tip *tip,
			const char *last, size_t len)
{
	char *head_path = head_path_of(path), *text;
	json_t *head = json_load_file(head_path, 0, NULL), *entry;
	const char *prev;

	entry = json_loadb(last, len, 0, NULL);
	prev = json_string_value(json_object_get(entry, "prev"));
	if (prev &&
	    json_integer_value(json_object_get(head, "seq")) ==
		    (json_int_t)tip->seq - 1 &&
	    json_is_string(json_object_get(head, "hash")) &&
	    strcmp(json_string_value(json_object_get(head, "hash")), prev) ==
		    0) {
		log_warning(
			"audit log \"%s\": bringing the head forward over line %llu, appended just before a crash",
			path, (unsigned long long)tip->seq);
		text = xasprintf("{\"seq\":%llu,\"hash\":\"%s\"}\n",
				 (unsigned long long)tip->seq, tip->hash);
		if (write_file_durable(head_path, text, strlen(text),
				       AUDIT_MODE) == -1)
			log_error("could not write \"%s\": %s", head_path,
				  strerror(errno));
		free(text);
	}
	json_decref(entry);
	json_decref(head);
	free(head_path);
}

/*
 * Settle what a crash inside audit_append() can leave, before the chain is
 * checked.  A torn last line was never reported as appended (the head is
 * written after the line is synced), so it is cut off; a head one line
 * behind a whole last line is brought forward.  Anything else, such as a
 * line removed after its head was written, is left for check_log() to
 * report.  audit_verify() settles nothing: it reports what it finds.
 */
static void settle_crash(const char *path)
{
	struct chain_tip tip = {0};
	size_t len = 0, keep, last;
	char err[512], *buf, *nl;

	buf = read_file(path, &len);
	if (!buf)
		return;
	if (len > 0 && buf[len - 1] != '\n') {
		nl = memrchr(buf, '\n', len);
		keep = nl ? (size_t)(nl - buf) + 1 : 0;
		log_warning(
			"audit log \"%s\": cutting off a torn last line left by a crash",
			path);
		if (truncate(path, (off_t)keep) == -1)
			log_error("could not truncate \"%s\": %s", path,
				  strerror(errno));
		len = keep;
	}
	memcpy(tip.hash, zero_hash, sizeof(tip.hash));
	if (len > 0 && check_lines(buf, len, &tip, err, sizeof(err)) == 0) {
		nl = memrchr(buf, '\n', len - 1);
		last = nl ? (size_t)(nl - buf) + 1 : 0;
		settle_head(path, &tip, buf + last, len - 1 - last);
	}
	free(buf);
}

struct audit *audit_open(const char *path, char *err, size_t errlen)
{
	struct chain_tip tip;
	struct audit *audit;
	char reason[512];
	int fd;

	settle_crash(path);
	if (check_log(path, &tip, reason, sizeof(reason)) == -1) {
		snprintf(err, errlen, "audit log \"%s\" does not verify: %s",
			 path, reason);
		return NULL;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, AUDIT_MODE);
	if (fd == -1 || fsync_parent(path) == -1) {
		snprintf(err, errlen, "could not open audit log \"%s\": %s",
			 path, strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	audit = xcalloc(1, sizeof(*audit));
	pthread_mutex_init(&audit->lock, NULL);
	audit->path = xstrdup(path);
	audit->head_path = head_path_of(path);
	audit->fd = fd;
	audit->seq = tip.seq;
	memcpy(audit->hash, tip.hash, sizeof(audit->hash));
	return audit;
}

void audit_close(struct audit *audit)
{
	if (!audit)
		return;
	close(audit->fd);
	pthread_mutex_destroy(&audit->lock);
	free(audit->head_path);
	free(audit->path);
	free(audit);
}

/* Returns the first member of FIELDS that a line's own keys own, or NULL. */
static const char *reserved_key_in(json_t *fields)
{
	size_t n = sizeof(reserved_keys) / sizeof(*reserved_keys);

	for (size_t i = 0; i < n; i++) {
		if (json_object_get(fields, reserved_keys[i]))
			return reserved_keys[i];
	}
	return NULL;
}

/*
 * The next line for AUDIT, without its newline, as a new string (caller
 * frees).  Called with the lock held.
 */
static char *format_line(struct audit *audit, const char *event,
			 const char *cluster, json_t *fields)
{
	char stamp[32];
	json_t *entry;
	char *text;

	format_time(wall_ms(), stamp, sizeof(stamp));
	entry = json_object();
	json_object_set_new(entry, "seq",
			    json_integer((json_int_t)(audit->seq + 1)));
	json_object_set_new(entry, "time", json_string(stamp));
	json_object_set_new(entry, "prev", json_string(audit->hash));
	json_object_set_new(entry, "event", json_string(event));
	if (cluster)
		json_object_set_new(entry, "cluster", json_string(cluster));
	if (fields)
		json_object_update(entry, fields);
	text = json_dumps(entry, JSON_COMPACT);
	json_decref(entry);
	return text;
}

/* Cut the log back to SIZE bytes after a failed append. */
static void truncate_back(struct audit *audit, off_t size)
{
	if (ftruncate(audit->fd, size) == -1 || fdatasync(audit->fd) == -1)
		log_error(
			"could not truncate audit log \"%s\" after a failed append: %s",
			audit->path, strerror(errno));
}

/*
 * Write LINE (LEN bytes, newline included) in one write() and sync it.
 * Returns 0, or -1 after logging and cutting off whatever was written.
 * Called with the lock held.
 */
static int write_line(struct audit *audit, const char *line, size_t len,
		      off_t *old_size)
{
	char err[256];

	if (append_line_synced(audit->fd, line, len, old_size, err,
			       sizeof(err)) == 0)
		return 0;
	log_error("could not append to audit log \"%s\": %s", audit->path, err);
	return -1;
}

/* Record SEQ and HASH in the head file.  Returns 0 or -1 after logging. */
static int write_head(struct audit *audit, uint64_t seq, const char *hash)
{
	json_t *head =
		json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "hash", hash);
	char *text = json_dumps(head, JSON_COMPACT);
	int rc;

	json_decref(head);
	rc = write_file_durable(audit->head_path, text, strlen(text),
				AUDIT_MODE);
	if (rc == -1)
		log_error("could not write audit head \"%s\": %s",
			  audit->head_path, strerror(errno));
	free(text);
	return rc;
}

/*
 * The line goes to disk first, then the head.  If the head cannot be
 * written the line is cut off again, so that a failed append leaves the
 * log as it was.  A crash between the two is settled by the next
 * audit_open() (settle_crash()).
 */
int audit_append(struct audit *audit, const char *event, const char *cluster,
		 json_t *fields)
{
	char hash[SHA256_HEX_LEN + 1];
	const char *reserved;
	char *text, *line;
	off_t old_size;
	int rc = -1;

	if (fields && !json_is_object(fields)) {
		log_error(
			"could not append to audit log \"%s\": fields of event \"%s\" are not an object",
			audit->path, event);
		return -1;
	}
	reserved = reserved_key_in(fields);
	if (reserved) {
		log_error(
			"could not append to audit log \"%s\": field \"%s\" of event \"%s\" is reserved",
			audit->path, reserved, event);
		return -1;
	}

	pthread_mutex_lock(&audit->lock);
	text = format_line(audit, event, cluster, fields);
	sha256_hex(text, strlen(text), hash);
	line = xasprintf("%s\n", text);
	if (write_line(audit, line, strlen(line), &old_size) == -1)
		goto done;
	if (write_head(audit, audit->seq + 1, hash) == -1) {
		truncate_back(audit, old_size);
		goto done;
	}
	audit->seq++;
	memcpy(audit->hash, hash, sizeof(audit->hash));
	rc = 0;
done:
	pthread_mutex_unlock(&audit->lock);
	free(line);
	free(text);
	return rc;
}

/* Whether ENTRY belongs to CLUSTER (any entry when CLUSTER is NULL). */
static int entry_matches(json_t *entry, const char *cluster)
{
	const char *own;

	if (!cluster)
		return 1;
	own = json_string_value(json_object_get(entry, "cluster"));
	return own && strcmp(own, cluster) == 0;
}

/* The last LIMIT members of ALL (stolen) as a new array. */
static json_t *keep_newest(json_t *all, size_t limit)
{
	size_t size = json_array_size(all);
	json_t *newest;

	if (limit == 0 || size <= limit)
		return all;
	newest = json_array();
	for (size_t i = size - limit; i < size; i++)
		json_array_append(newest, json_array_get(all, i));
	json_decref(all);
	return newest;
}

/*
 * Lines that do not parse are skipped with a warning: this is a view for
 * people, audit_verify() is the judge of the chain.
 */
json_t *audit_read(const char *path, const char *cluster, size_t limit)
{
	json_t *all, *entry;
	json_error_t jerr;
	size_t len, pos = 0;
	unsigned long long n = 0;
	char *buf;

	buf = read_file(path, &len);
	if (!buf)
		return NULL;
	all = json_array();
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - (buf + pos)) : len - pos;

		n++;
		entry = nl ? json_loadb(buf + pos, line_len, 0, &jerr) : NULL;
		if (!json_is_object(entry))
			log_warning(
				"skipping line %llu of audit log \"%s\": not a whole JSON object",
				n, path);
		else if (entry_matches(entry, cluster))
			json_array_append(all, entry);
		json_decref(entry);
		pos += line_len + 1;
	}
	free(buf);
	return keep_newest(all, limit);
}
