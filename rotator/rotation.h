/*
 * rotation.h: the rotation state machine.
 *
 *   planned -> provisioning -> catching_up -> verifying -> switching
 *           -> tearing_down -> done
 *   any state before the commit point -> aborted
 *
 * A rotation replaces the primary of one cluster with a fresh node born
 * from a restore point.  It runs in its own thread.  Every transition
 * goes through rotation_enter() (rotation.c), which writes the journal
 * and syncs it before the step takes effect, then the audit log, then
 * the list of steps the API shows.  The promotion of the fresh node is
 * the commit point: before it a failure rolls back (the fresh node is
 * destroyed, the old primary serves again), after it a failure rolls
 * forward.
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

struct rotation {
	char id[64];
	struct cluster *cl; /* borrowed */
	char *reason;
	char *requester;

	/* Guarded by cl->lock: the API reads them while the thread runs. */
	enum rotation_state state;
	char restore_point[64];
	struct node old;   /* the node being replaced */
	struct node fresh; /* its successor, once created */
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

	pthread_t thread;
	bool finished; /* the thread has returned */
};

/* Name of STATE as the journal and the API spell it. */
const char *rotation_state_name(enum rotation_state state);

/*
 * Start a rotation of CL in a new thread.  Returns it (owned by CL's
 * history), or NULL after writing ERR when one is already running or the
 * cluster has no primary yet; *CONFLICT says which (the API answers 409).
 */
struct rotation *rotation_start(struct cluster *cl, const char *reason,
				const char *requester, bool *conflict,
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
