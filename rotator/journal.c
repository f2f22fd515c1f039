/*
 * journal.c: the crash-safe rotation journal declared in journal.h.
 *
 * A record is written with one write() on an O_APPEND descriptor and
 * synced before journal_append() returns.  A crash mid-append can leave
 * only the last line torn; replay skips it, and journal_open() cuts it
 * off so that the next record does not land glued to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rotator/journal.h"
#include "rotator/log.h"

#define JOURNAL_MODE 0600

struct journal {
	pthread_mutex_t lock;
	char *path;
	int fd;
};

/*
 * Cut a torn final line (one without its newline) off the journal at PATH,
 * open for writing as FD.  Returns 0, or -1 with errno set.
 */
static int drop_torn_tail(const char *path, int fd)
{
	size_t len, keep;
	char *buf;

	buf = read_file(path, &len);
	if (!buf)
		return -1;
	keep = len;
	while (keep > 0 && buf[keep - 1] != '\n')
		keep--;
	free(buf);
	if (keep == len)
		return 0;
	log_warning(
		"dropping a torn record of %zu bytes at the end of journal \"%s\"",
		len - keep, path);
	if (ftruncate(fd, (off_t)keep) == -1 || fdatasync(fd) == -1)
		return -1;
	return 0;
}

struct journal *journal_open(const char *path, char *err, size_t errlen)
{
	struct journal *journal;
	int fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		  JOURNAL_MODE);
	if (fd == -1 || fchmod(fd, JOURNAL_MODE) == -1 ||
	    fsync_parent(path) == -1 || drop_torn_tail(path, fd) == -1) {
		snprintf(err, errlen, "could not open journal \"%s\": %s", path,
			 strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	journal = xcalloc(1, sizeof(*journal));
	pthread_mutex_init(&journal->lock, NULL);
	journal->path = xstrdup(path);
	journal->fd = fd;
	return journal;
}

void journal_close(struct journal *journal)
{
	if (!journal)
		return;
	close(journal->fd);
	pthread_mutex_destroy(&journal->lock);
	free(journal->path);
	free(journal);
}

/* RECORD as one line with "time" added, as a new string (caller frees). */
static char *format_record(json_t *record)
{
	json_t *copy = json_copy(record);
	char stamp[32];
	char *text, *line;

	format_time(wall_ms(), stamp, sizeof(stamp));
	json_object_set_new(copy, "time", json_string(stamp));
	text = json_dumps(copy, JSON_COMPACT);
	json_decref(copy);
	line = xasprintf("%s\n", text);
	free(text);
	return line;
}

/*
 * Write LINE (LEN bytes, newline included) in one write() and sync it.  On
 * failure whatever was written is cut off again.  Returns 0, or -1 after
 * logging.  Called with the lock held.
 */
static int write_record(struct journal *journal, const char *line, size_t len)
{
	char err[256];

	if (append_line_synced(journal->fd, line, len, NULL, err,
			       sizeof(err)) == 0)
		return 0;
	log_error("could not append to journal \"%s\": %s", journal->path, err);
	return -1;
}

int journal_append(struct journal *journal, json_t *record)
{
	char *line;
	int rc;

	if (!json_is_string(json_object_get(record, "rotation"))) {
		log_error(
			"could not append to journal \"%s\": record has no rotation id",
			journal->path);
		return -1;
	}
	line = format_record(record);
	pthread_mutex_lock(&journal->lock);
	rc = write_record(journal, line, strlen(line));
	pthread_mutex_unlock(&journal->lock);
	free(line);
	return rc;
}

/* Merge RECORD (stolen) into the entry for its rotation in ACTIVE. */
static void merge_record(json_t *active, json_t *record)
{
	const char *id = json_string_value(json_object_get(record, "rotation"));
	json_t *state = json_object_get(active, id);

	if (!state) {
		json_object_set_new(active, id, record);
		return;
	}
	json_object_update(state, record);
	json_decref(record);
}

/*
 * Read the journal in BUF (LEN bytes) into ACTIVE, line by line.  Returns
 * 0, or -1 after writing into ERR the line that could not be read.
 */
static int replay_lines(const char *path, const char *buf, size_t len,
			json_t *active, char *err, size_t errlen)
{
	unsigned long long n = 0;
	json_error_t jerr;
	json_t *record;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		int last = pos + line_len + 1 >= len;

		n++;
		record = nl ? json_loadb(buf + pos, line_len, 0, &jerr) : NULL;
		if (!record && last) {
			log_warning(
				"skipping torn record at line %llu of journal \"%s\": its step had not taken effect",
				n, path);
			return 0;
		}
		if (!record) {
			snprintf(
				err, errlen,
				"%s: line %llu: could not parse journal record: %s",
				path, n, jerr.text);
			return -1;
		}
		if (!json_is_string(json_object_get(record, "rotation"))) {
			snprintf(
				err, errlen,
				"%s: line %llu: journal record has no rotation id",
				path, n);
			json_decref(record);
			return -1;
		}
		merge_record(active, record);
		pos += line_len + 1;
	}
	return 0;
}

json_t *journal_replay(const char *path, char *err, size_t errlen)
{
	json_t *active;
	size_t len;
	char *buf;

	buf = read_file(path, &len);
	if (!buf && errno == ENOENT)
		return json_object();
	if (!buf) {
		snprintf(err, errlen, "could not read journal \"%s\": %s", path,
			 strerror(errno));
		return NULL;
	}
	active = json_object();
	if (replay_lines(path, buf, len, active, err, errlen) == -1) {
		json_decref(active);
		active = NULL;
	}
	free(buf);
	return active;
}

/*
 * The file is replaced by rename, so an open journal would go on appending
 * to the old one: compact before journal_open(), as start-up does.
 */
int journal_compact(const char *path, json_t *active)
{
	const char *id;
	json_t *record;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;
	int rc = -1;

	if (!json_is_object(active)) {
		log_error(
			"could not compact journal \"%s\": the active rotations are not an object",
			path);
		return -1;
	}
	out = open_memstream(&buf, &len);
	if (!out)
		abort();
	json_object_foreach (active, id, record) {
		if (!json_is_string(json_object_get(record, "rotation"))) {
			log_error(
				"could not compact journal \"%s\": record of rotation \"%s\" has no rotation id",
				path, id);
			goto done;
		}
		if (json_dumpf(record, out, JSON_COMPACT) == -1 ||
		    fputc('\n', out) == EOF)
			abort();
	}
	if (fflush(out) == EOF)
		abort();
	rc = write_file_durable(path, buf, len, JOURNAL_MODE);
	if (rc == -1)
		log_error("could not compact journal \"%s\": %s", path,
			  strerror(errno));
done:
	fclose(out);
	free(buf);
	return rc;
}

static bool ended(json_t *record)
{
	const char *state = json_string_value(json_object_get(record, "state"));

	return state &&
	       (strcmp(state, "done") == 0 || strcmp(state, "aborted") == 0);
}

int journal_trim(struct journal *journal)
{
	char err[512];
	json_t *active;
	const char *id;
	json_t *record;
	void *tmp;
	int fd, rc = -1;

	pthread_mutex_lock(&journal->lock);
	active = journal_replay(journal->path, err, sizeof(err));
	if (!active) {
		log_error("could not trim the journal: %s", err);
		goto out;
	}
	json_object_foreach_safe(active, tmp, id, record)
	{
		if (ended(record))
			json_object_del(active, id);
	}

	/*
	 * The new file replaces the old by rename, and the old descriptor
	 * then points at a file no one will read: once the rename is done,
	 * appends must go to the new file or fail, never to the old one.
	 */
	if (journal_compact(journal->path, active) == -1)
		goto out;
	fd = open(journal->path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd == -1)
		log_error("could not open journal \"%s\" again: %s; every "
			  "step fails until the daemon restarts",
			  journal->path, strerror(errno));
	close(journal->fd);
	journal->fd = fd;
	rc = fd == -1 ? -1 : 0;
out:
	pthread_mutex_unlock(&journal->lock);
	json_decref(active);
	return rc;
}
