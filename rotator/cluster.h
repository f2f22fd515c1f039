/*
 * cluster.h: what the daemon knows of one managed cluster at run time.
 *
 * A cluster's members, counters and the restore point each node was born
 * from are kept in STATE_DIR/clusters/NAME/state.json, rewritten durably
 * whenever they change.  Everything in struct cluster that can change
 * while the daemon runs is guarded by its lock; worker threads (rotation,
 * snapshot) take it for short reads and writes, never across a blocking
 * call into a database.
 */
#ifndef ROTATOR_CLUSTER_H
#define ROTATOR_CLUSTER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "rotator/config.h"
#include "rotator/util.h"

struct adapter;
struct endpoint;
struct sentinel;
struct rotation;
struct daemon;

enum node_role {
	NODE_PRIMARY, /* serves writes behind the endpoint */
	NODE_REPLICA, /* a caught-up replica */
	NODE_FRESH,   /* being provisioned or catching up */
	NODE_RETIRED, /* fenced or replaced, awaiting teardown */
};

struct node {
	int generation;
	char host[64];
	int port;
	char *dir; /* node directory; engine data lives inside */
	enum node_role role;
	char *born_from; /* restore point id, "initdb", "empty", "adopt" */
	int64_t born_at; /* wall-clock ms */
	bool adopted;	 /* not created by rotator */
	int strikes;	 /* failed health checks in a row; not saved */
	char *conf_file; /* adopted: its configuration file, or NULL */
};

#define CLUSTER_HISTORY 32

struct cluster {
	struct config_cluster *cfg; /* borrowed; swapped on reload */
	const struct adapter *adapter;
	struct daemon *daemon; /* borrowed */
	struct endpoint *endpoint;
	struct endpoint *reader;   /* endpoint.read_listen, or NULL */
	struct sentinel *sentinel; /* endpoint.sentinel_listen, or NULL */
	char *dir;		   /* STATE_DIR/clusters/NAME */
	char *password;		   /* auth.password_file's content */
	char scope[64];		   /* "NAME" for log lines */

	pthread_mutex_t lock;
	pthread_mutex_t job_lock; /* held by a rotation or snapshot */

	struct node *nodes;
	int n_nodes;
	int next_generation;
	int next_snapshot;
	int next_rotation;

	struct rotation *running; /* at most one rotation at a time */
	struct rotation *history[CLUSTER_HISTORY]; /* newest last */
	int n_history;
	bool snapshot_running;
	char *snapshot_error; /* last failure, or NULL */

	/* The last "snapshot verify" of this cluster, run by the daemon. */
	char verify_id[64]; /* restore point, "" for none yet */
	bool verify_running;
	bool health_running;	   /* the replicas' health check */
	int64_t next_health_check; /* monotonic ms */
	bool verify_passed;
	char verify_reason[512]; /* why it failed */

	int64_t next_rotation_due;  /* monotonic ms; 0 = none */
	int64_t next_replica_check; /* monotonic ms */
	int64_t next_snapshot_due;
	int64_t last_rotation_at; /* wall ms, of the last one done */
	json_t *last_rotation;	  /* the last one ended, kept in state.json */
	int64_t last_snapshot_at; /* wall ms */
	bool bootstrapped;
	bool bootstrap_failed;
	bool primary_down; /* found not running, recorded; not seen since */
};

/* Human name of ROLE. */
const char *node_role_name(enum node_role role);

/*
 * The current primary, or NULL.  Borrowed: valid while CL->lock is held
 * or while the caller owns CL->job_lock (only a job changes the members).
 */
struct node *cluster_primary(struct cluster *cl);

/* The member of generation GEN, or NULL.  Same rules as above. */
struct node *cluster_node(struct cluster *cl, int gen);

/*
 * Tell the read endpoint and the Sentinel emulation who serves: reads go
 * to the replicas (role replica: caught up and verified), or to the
 * primary when there is none.  Caller does not hold CL->lock.
 */
void cluster_publish(struct cluster *cl);

/*
 * Take replica GEN out of the read set at once: its role becomes retired,
 * saved, and published.  Caller does not hold CL->lock.
 */
void cluster_retire_replica(struct cluster *cl, int gen);

/* Append a copy of N to the members.  Caller holds CL->lock. */
void cluster_add_node(struct cluster *cl, const struct node *n);

/* Remove generation GEN from the members.  Caller holds CL->lock. */
void cluster_remove_node(struct cluster *cl, int gen);

/* Free what N owns, not N itself. */
void node_release(struct node *n);

/* Deep copy of SRC into DST. */
void node_copy(struct node *dst, const struct node *src);

/* JSON form of N, a new reference. */
json_t *node_to_json(const struct node *n);

/* Fill N from J; returns 0 or -1 when a member is missing. */
int node_from_json(json_t *j, struct node *n) WUR;

/*
 * Read STATE_DIR/clusters/NAME/state.json into CL (members and
 * counters).  A missing file leaves CL empty.  Returns 0, or -1 after
 * writing the reason into ERR.
 */
int cluster_load_state(struct cluster *cl, char *err, size_t errlen) WUR;

/*
 * Write CL's members and counters durably.  Caller holds CL->lock.
 * Returns 0 or -1 after logging.
 */
int cluster_save_state(struct cluster *cl) WUR;

#endif
