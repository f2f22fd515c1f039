/*
 * rotation.h: the rotation state machine.
 *
 *   planned -> provisioning -> catching_up -> verifying -> switching
 *           -> tearing_down -> done
 *   any state before the commit point -> aborted
 *
 * A rotation replaces nodes of one cluster, one at a time, each with a
 * fresh node born from a restore point: a leg per node, replicas first
 * and the primary last.  The states above repeat for every leg (the next
 * leg begins in planned again).  A leg may also add a replica (no old
 * node) or remove a surplus one (no fresh node).  It runs in its own
 * thread.  Every transition
 * goes through rotation_enter() (rotation.c), which writes the journal
 * and syncs it before the step takes effect, then the audit log, then
 * the list of steps the API shows.  The promotion of the fresh node is
 * the commit point of a primary's leg, its entry into the members as a
 * replica that of a replica's leg: before it a failure rolls back (the
 * fresh node is destroyed, the old node serves again), after it a
 * failure rolls forward.  A leg that aborts ends the rotation.
 */
#ifndef ROTATOR_ROTATION_H
#define ROTATOR_ROTATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "rotator/cluster.h"

enum rotation_state {
	ROT_PLANNED,	  /* restore point chosen and checked */
	ROT_PROVISIONING, /* fresh node created and seeded */
	ROT_CATCHING_UP,  /* fresh node replicating, lag above bound */
	ROT_VERIFYING,	  /* engine and canary checks on the fresh node */
	ROT_SWITCHING,	  /* endpoint held, old fenced, fresh promoted */
	ROT_TEARING_DOWN, /* old node stopped and destroyed */
	ROT_DONE,
	ROT_ABORTED,
};

/* What a leg does. */
enum leg_kind {
	LEG_REPLACE, /* a fresh node replaces member GENERATION */
	LEG_ADD,     /* a fresh replica joins */
	LEG_REMOVE,  /* replica GENERATION leaves, not replaced */
};

struct leg {
	enum leg_kind kind;
	int generation; /* the member replaced or removed; 0 for LEG_ADD */
};

#define ROTATION_MAX_LEGS (2 * MAX_REPLICAS + 2)

/* Which nodes rotation_start() replaces. */
#define ROTATE_ALL 0	   /* every member, replicas first */
#define ROTATE_REPLICAS -1 /* add or remove replicas to match the config */

struct rotation {
	char id[64];
	struct cluster *cl; /* borrowed */
	char *reason;
	char *requester;

	struct leg legs[ROTATION_MAX_LEGS];
	int n_legs;

	/* Guarded by cl->lock: the API reads them while the thread runs. */
	int leg; /* index of the leg running */
	enum rotation_state state;
	char restore_point[64];
	struct node old;     /* the node being replaced (generation 0: none) */
	struct node fresh;   /* its successor, once created */
	struct node primary; /* the primary the fresh node follows */
	bool replica;	     /* the leg is a replica's: no write pause */
	bool have_fresh;
	bool held;	  /* endpoint holding connections */
	bool fenced;	  /* old primary stopped */
	bool committed;	  /* fresh node promoted */
	bool unconfirmed; /* promotion asked for, never confirmed */
	char abort_reason[512];
	int64_t requested_at; /* wall ms */
	int64_t finished_at;
	int64_t hold_started;	/* monotonic ms */
	int64_t write_pause_ms; /* hold to release, -1 until known */
	json_t *steps;
	json_t *nodes; /* a summary of every leg done */

	pthread_t thread;
	bool finished; /* the thread has returned */
};

/* Name of STATE as the journal and the API spell it. */
const char *rotation_state_name(enum rotation_state state);

/*
 * Start a rotation of CL in a new thread that replaces NODE: a member's
 * generation, ROTATE_ALL or ROTATE_REPLICAS.  Returns it (owned by CL's
 * history), or NULL after writing ERR and setting *STATUS to the HTTP
 * status that fits: 409 when one is already running, the cluster is not
 * ready or there is nothing to do, 404 when NODE is no member, 500.
 */
struct rotation *rotation_start(struct cluster *cl, const char *reason,
				const char *requester, int node, int *status,
				char *err, size_t errlen);

/* The rotation ID of CL, or NULL.  Caller holds CL->lock. */
struct rotation *rotation_find(struct cluster *cl, const char *id);

/* JSON form of ROT, a new reference.  Caller holds ROT->cl->lock. */
json_t *rotation_to_json(struct rotation *rot);

/* Join ROT's thread if it has finished; true when it has. */
bool rotation_reap(struct rotation *rot);

void rotation_free(struct rotation *rot);

/*
 * Settle a rotation that was in flight when the daemon stopped, from its
 * merged journal RECORD: roll back one that had not reached the commit
 * point, roll forward one that had.  Runs before the loop starts.
 * Returns 0, or -1 after logging (the daemon then refuses to start).
 */
int rotation_recover(struct cluster *cl, json_t *record) WUR;

#endif
