/*
 * provisioner.h: what creates, runs and destroys nodes.
 *
 * The provisioner decides where a node lives and as whom its programs
 * run; the adapter decides which programs.  The local provisioner gives
 * each node a free port from the cluster's range and a directory
 * STATE_DIR/clusters/NAME/nodes/GENERATION of mode 0700 owned by run_as,
 * and runs the engine's programs from bin_dir as run_as.
 *
 * Every function may block and is called from worker threads only.
 */
#ifndef ROTATOR_PROVISIONER_H
#define ROTATOR_PROVISIONER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rotator/util.h"

struct cluster;
struct node;

/*
 * Give N (whose generation is set) a port that nothing listens on and a
 * fresh, empty node directory.  Returns 0, or -1 after writing the
 * reason into ERR.
 */
int prov_create(struct cluster *cl, struct node *n, char *err,
		size_t errlen) WUR;

/*
 * Remove N's directory.  The adapter must have stopped its processes.
 * Returns 0, or -1 after writing the reason into ERR.
 */
int prov_destroy(struct cluster *cl, struct node *n, char *err,
		 size_t errlen) WUR;

/*
 * Run PROGRAM (a name in bin_dir, or an absolute path) with ARGV
 * (NULL-terminated, without the program name) as run_as, with a clean
 * environment plus ENV ("NAME=value" strings, NULL-terminated, may be
 * NULL), and wait at most TIMEOUT_MS.  Standard output goes to OUT_PATH
 * when it is not NULL; standard error is captured and its last line
 * written into ERR on failure.  Returns 0 when the program exited 0,
 * or -1 after writing the reason into ERR.
 */
int prov_run(struct cluster *cl, const char *program, const char *const *argv,
	     const char *const *env, const char *out_path, int64_t timeout_ms,
	     char *err, size_t errlen) WUR;

/*
 * Make PATH a directory of MODE owned by run_as (creating it if needed).
 * Returns 0, or -1 after writing the reason into ERR.
 */
int prov_mkdir(struct cluster *cl, const char *path, mode_t mode, char *err,
	       size_t errlen) WUR;

/*
 * Write LEN bytes to PATH durably, mode 0600, owned by run_as.  Returns 0,
 * or -1 after writing the reason into ERR.
 */
int prov_write_file(struct cluster *cl, const char *path, const char *buf,
		    size_t len, char *err, size_t errlen) WUR;

/*
 * The uid and gid that nodes run as: run_as's, or the daemon's own when
 * run_as is not set.  Returns 0, or -1 after writing into ERR.
 */
int prov_owner(struct cluster *cl, uid_t *uid, gid_t *gid, char *err,
	       size_t errlen) WUR;

/*
 * The pid on the first line of PATH (a server's pid file); 0 when there is
 * no such file or it names none, -1 when it cannot be read now (as when
 * the daemon's descriptors run out): the caller cannot tell.
 */
pid_t prov_read_pid(const char *path);

/*
 * True while PID runs.  A daemonized server is not the daemon's child:
 * once it exits it may linger as a zombie until init reaps it, which
 * counts as gone.  A process that exists but cannot be looked at counts
 * as running.
 */
bool prov_pid_alive(pid_t pid);

/* Wait until PID is gone, at most until DEADLINE; true when it is. */
bool prov_wait_gone(pid_t pid, int64_t deadline);

#endif
