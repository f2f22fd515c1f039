/*
 * adapter.h: the one interface between the rotation state machine and an
 * engine.
 *
 * An engine fills a static const struct adapter in its own file and is
 * listed in adapter.c's table.  The state machine knows no engine; an
 * adapter knows no schedule, endpoint or journal.
 *
 * Every member may block (it talks to a database or waits for a process)
 * and is therefore called only from a worker thread, never from the event
 * loop.  Each returns 0 on success and -1 on failure after writing one
 * lowercase sentence into ERR (ERRLEN bytes), which the caller records in
 * the journal and the audit log.  Nodes are borrowed; an adapter never
 * frees one.
 */
#ifndef ROTATOR_ADAPTER_H
#define ROTATOR_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rotator/util.h"

struct cluster;
struct node;

/* What catching up looks like from the fresh node's side. */
struct catch_up {
	bool streaming;	   /* replication link up and synced */
	int64_t lag_bytes; /* primary position minus fresh position */
	char detail[512];  /* engine words for the log: LSNs or offsets */
};

/*
 * Where the old primary stopped: the fresh node must have every byte up
 * to here before it may be promoted.
 */
struct fence_point {
	char position[64]; /* engine form: "0/3000028" */
	uint64_t value;	   /* the same as a number */
	char source[512];  /* engine's own: where the fenced node keeps it */
};

struct adapter {
	const char *name; /* "postgres", "redis" */

	/*
	 * Whether a primary found not running outside a rotation is started
	 * again.  PostgreSQL recovers every commit from its WAL; a Redis
	 * primary would come back with its last save only, and its replicas
	 * would then resynchronise to that and drop what came after.
	 */
	bool restart_lost_primary;

	/*
	 * Make generation 1 from nothing in N (whose port and directory the
	 * provisioner chose) and start it as the primary.
	 */
	int (*bootstrap)(struct cluster *cl, struct node *n, char *err,
			 size_t errlen);

	/*
	 * Optional: take over the running primary at N's host and port (from
	 * the configuration): check that it can be rotated and fill in where
	 * it lives.  N is marked adopted.
	 */
	int (*adopt)(struct cluster *cl, struct node *n, char *err,
		     size_t errlen);

	/*
	 * Capture a snapshot of PRIMARY into directory DIR (absent yet) and
	 * verify it with the engine's tools.  Adds the engine position and
	 * the files to check when seeding to MANIFEST (borrowed object).
	 */
	int (*snapshot)(struct cluster *cl, struct node *primary,
			const char *dir, json_t *manifest, char *err,
			size_t errlen);

	/*
	 * Check every file of the snapshot in DIR against MANIFEST without
	 * copying anything.  Used by "snapshot verify".
	 */
	int (*verify_snapshot)(struct cluster *cl, const char *dir,
			       json_t *manifest, char *err, size_t errlen);

	/*
	 * Lay the snapshot in DIR down into FRESH's directory, verifying each
	 * file as it is copied, configure FRESH as a replica of PRIMARY and
	 * start it.  Returns -2 (not -1) when the snapshot itself does not
	 * match its manifests: it must not seed any node again.
	 */
	int (*seed)(struct cluster *cl, const char *dir, json_t *manifest,
		    struct node *fresh, struct node *primary, char *err,
		    size_t errlen);

	/* How far FRESH is behind PRIMARY. */
	int (*catch_up)(struct cluster *cl, struct node *fresh,
			struct node *primary, struct catch_up *state, char *err,
			size_t errlen);

	/*
	 * The checks a replica must pass before it may replace PRIMARY:
	 * engine state (in recovery, following the primary's history, same
	 * system) and the cluster's canary queries.
	 */
	int (*verify_replica)(struct cluster *cl, struct node *fresh,
			      struct node *primary, char *err, size_t errlen);

	/*
	 * Work on OLD, still serving, that makes the fence faster or surer (a
	 * checkpoint; ending replication to every node but the fresh one).
	 */
	int (*prepare_switch)(struct cluster *cl, struct node *old, char *err,
			      size_t errlen);

	/*
	 * Stop OLD accepting writes for good and report where its history
	 * ends.  Waits at most until DEADLINE (monotonic ms).
	 */
	int (*fence)(struct cluster *cl, struct node *old,
		     struct fence_point *point, int64_t deadline, char *err,
		     size_t errlen);

	/* Undo fence(): OLD serves writes again.  Used by a rollback. */
	int (*unfence)(struct cluster *cl, struct node *old, char *err,
		       size_t errlen);

	/* Wait until FRESH has replayed past POINT, at most to DEADLINE. */
	int (*wait_replayed)(struct cluster *cl, struct node *fresh,
			     const struct fence_point *point, int64_t deadline,
			     char *err, size_t errlen);

	/* Promote FRESH and confirm it accepts writes, at most to DEADLINE. */
	int (*promote)(struct cluster *cl, struct node *fresh, int64_t deadline,
		       char *err, size_t errlen);

	/*
	 * Make REPLICA follow PRIMARY, a node just promoted, without a new
	 * copy of the data: its history continues on the new primary's.
	 * Confirms that the replica's link to PRIMARY is up, at most until
	 * DEADLINE.
	 */
	int (*follow)(struct cluster *cl, struct node *replica,
		      struct node *primary, int64_t deadline, char *err,
		      size_t errlen);

	/* Start N if it is not running (after a host restart, say). */
	int (*ensure_running)(struct cluster *cl, struct node *n, char *err,
			      size_t errlen);

	/*
	 * Whether N's server process is alive; for an adopted node, which
	 * rotator did not start, whether it answers.  Cheap: the health
	 * check asks it of the primary every few seconds.
	 */
	bool (*running)(struct cluster *cl, struct node *n);

	/*
	 * Optional: drop archived history that no kept restore point needs;
	 * OLDEST is the manifest of the oldest one kept.  Never fails loudly.
	 */
	void (*prune_archive)(struct cluster *cl, json_t *oldest);

	/*
	 * Optional: after a rollback, release what the rotation's restore
	 * point holds on PRIMARY (an adopted primary's replication slot).
	 * Logs its own failures.
	 */
	void (*release_restore_point)(struct cluster *cl, struct node *primary);

	/* Stop N's processes for good; success when none is left. */
	int (*stop)(struct cluster *cl, struct node *n, char *err,
		    size_t errlen);
};

/* The adapter called NAME, or NULL. */
const struct adapter *adapter_find(const char *name);

#endif
