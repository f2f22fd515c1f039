/*
 * rotation.c: the rotation state machine (see rotation.h).
 *
 * The thread that runs a rotation owns cl->job_lock for its whole life,
 * so no snapshot is taken and no other job changes the members meanwhile.
 * It takes cl->lock only to publish what the API shows and to change the
 * members; it never holds cl->lock across a call into the adapter.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "rotator/audit.h"
#include "rotator/daemon.h"
#include "rotator/endpoint.h"
#include "rotator/journal.h"
#include "rotator/log.h"
#include "rotator/provisioner.h"
#include "rotator/rotation.h"
#include "snapshots/store.h"

#define ERRLEN 512
#define CATCH_UP_POLL_MS 100
#define TEARDOWN_TRIES 3
#define PROMOTE_TRIES 3
#define SEED_TRIES 3

static const char *const state_names[] = {
	[ROT_PLANNED] = "planned",
	[ROT_PROVISIONING] = "provisioning",
	[ROT_CATCHING_UP] = "catching_up",
	[ROT_VERIFYING] = "verifying",
	[ROT_SWITCHING] = "switching",
	[ROT_TEARING_DOWN] = "tearing_down",
	[ROT_DONE] = "done",
	[ROT_ABORTED] = "aborted",
};

const char *rotation_state_name(enum rotation_state state)
{
	return state_names[state];
}

static int state_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(*state_names); i++)
		if (name && strcmp(state_names[i], name) == 0)
			return (int)i;
	return -1;
}

/*
 * Append a step (a state entered or a milestone within one) to the list
 * the API shows.  Caller holds cl->lock.
 */
static void add_step(struct rotation *rot, const char *name, const char *detail)
{
	char when[32];

	format_time(wall_ms(), when, sizeof(when));
	json_array_append_new(rot->steps,
			      json_pack("{s:s, s:s, s:s}", "step", name, "time",
					when, "detail", detail ? detail : ""));
}

static const char *const leg_names[] = {
	[LEG_REPLACE] = "replace",
	[LEG_ADD] = "add",
	[LEG_REMOVE] = "remove",
};

/*
 * The journal record of ROT as it stands: enough to settle its leg
 * later.  "replica" says which commit point applies.
 */
static json_t *journal_record(struct rotation *rot)
{
	json_t *rec = json_pack(
		"{s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:i, s:s, s:b, s:o}",
		"rotation", rot->id, "cluster", rot->cl->cfg->name, "state",
		state_names[rot->state], "restore_point", rot->restore_point,
		"fenced", rot->fenced, "committed", rot->committed, "old",
		node_to_json(&rot->old), "leg", rot->leg, "kind",
		leg_names[rot->legs[rot->leg].kind], "replica", rot->replica,
		"primary", node_to_json(&rot->primary));

	if (rot->have_fresh)
		json_object_set_new(rec, "fresh", node_to_json(&rot->fresh));
	return rec;
}

/*
 * Write ROT's current record to the journal and sync it.  Every change
 * that must survive a crash goes through here before it takes effect.
 */
static int journal_sync(struct rotation *rot)
{
	json_t *rec = journal_record(rot);
	int rc = journal_append(rot->cl->daemon->journal, rec);

	json_decref(rec);
	return rc;
}

static void audit_step(struct rotation *rot, const char *event,
		       const char *detail)
{
	json_t *fields = json_pack("{s:s, s:s, s:s}", "rotation", rot->id,
				   "state", state_names[rot->state], "detail",
				   detail ? detail : "");

	if (audit_append(rot->cl->daemon->audit, event, rot->cl->cfg->name,
			 fields) == -1)
		log_error(
			"rotation %s: could not record \"%s\" in the audit log",
			rot->id, event);
	json_decref(fields);
}

/*
 * The one transition function.  In this order: the journal (synced; if
 * that fails the step must not happen), the log line old -> new, the
 * audit log, the API's step list.  Returns 0 or -1.
 */
static int rotation_enter(struct rotation *rot, enum rotation_state next,
			  const char *detail)
{
	enum rotation_state prev = rot->state;

	pthread_mutex_lock(&rot->cl->lock);
	rot->state = next;
	pthread_mutex_unlock(&rot->cl->lock);
	if (journal_sync(rot) == -1) {
		pthread_mutex_lock(&rot->cl->lock);
		rot->state = prev;
		pthread_mutex_unlock(&rot->cl->lock);
		return -1;
	}
	slog_info(rot->cl->scope, "rotation %s: %s -> %s%s%s", rot->id,
		  state_names[prev], state_names[next], detail ? ": " : "",
		  detail ? detail : "");
	audit_step(rot, "rotation_step", detail);
	pthread_mutex_lock(&rot->cl->lock);
	add_step(rot, state_names[next], detail);
	pthread_mutex_unlock(&rot->cl->lock);
	return 0;
}

/* A milestone inside a state: an event, a step, no new state. */
static void milestone(struct rotation *rot, const char *token, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

static void milestone(struct rotation *rot, const char *token, const char *fmt,
		      ...)
{
	char detail[ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	daemon_event(rot->cl->daemon, rot->cl->cfg->name, token, rot->id, "%s",
		     detail);
	pthread_mutex_lock(&rot->cl->lock);
	add_step(rot, token, detail);
	pthread_mutex_unlock(&rot->cl->lock);
}

static bool stopping(struct rotation *rot, char *err)
{
	if (!rot->cl->daemon->stopping)
		return false;
	snprintf(err, ERRLEN, "the daemon is stopping");
	return true;
}

/*
 * planned: choose the newest restore point, taking one first when the
 * cluster has none, and check its manifest against the audit log.
 */
static json_t *plan(struct rotation *rot, bool *bad, char *err)
{
	struct cluster *cl = rot->cl;
	char id[64];

	/*
	 * An adopted primary's history is not in rotator's archive: its
	 * rotation always takes a restore point of its own first.
	 */
	if (rot->primary.adopted || store_newest(cl, id, sizeof(id)) == -1) {
		milestone(rot, "+snapshot-start", "%s",
			  rot->primary.adopted ? "the primary is adopted"
					       : "no restore point yet");
		if (store_take(cl, id, err, ERRLEN) == -1)
			return NULL;
		daemon_event(cl->daemon, cl->cfg->name, "+snapshot-taken", id,
			     "for rotation %s", rot->id);
	}
	pthread_mutex_lock(&cl->lock);
	snprintf(rot->restore_point, sizeof(rot->restore_point), "%s", id);
	pthread_mutex_unlock(&cl->lock);
	return store_open(cl, id, bad, err, ERRLEN);
}

/*
 * provisioning: a new generation, a port and directory from the
 * provisioner, the restore point laid down and started as a replica.
 * The fresh node is a member (role fresh) from before its directory
 * exists, so that a crash leaves nothing unaccounted for.
 */
static int provision(struct rotation *rot, json_t *manifest, char *err)
{
	struct cluster *cl = rot->cl;
	char *dir = store_path(cl, rot->restore_point);
	int rc = -1;

	pthread_mutex_lock(&cl->lock);
	memset(&rot->fresh, 0, sizeof(rot->fresh));
	rot->fresh.generation = cl->next_generation++;
	rot->fresh.role = NODE_FRESH;
	rot->fresh.born_from = xstrdup(rot->restore_point);
	rot->fresh.born_at = wall_ms();
	pthread_mutex_unlock(&cl->lock);

	if (prov_create(cl, &rot->fresh, err, ERRLEN) == -1)
		goto out;
	pthread_mutex_lock(&cl->lock);
	rot->have_fresh = true;
	cluster_add_node(cl, &rot->fresh);
	rc = cluster_save_state(cl);
	pthread_mutex_unlock(&cl->lock);
	if (rc == -1 || journal_sync(rot) == -1) {
		snprintf(err, ERRLEN, "could not record the fresh node");
		rc = -1;
		goto out;
	}
	rc = cl->adapter->seed(cl, dir, manifest, &rot->fresh, &rot->primary,
			       err, ERRLEN);
	if (rc == 0)
		milestone(rot, "+provisioned",
			  "generation %d on port %d from %s",
			  rot->fresh.generation, rot->fresh.port,
			  rot->restore_point);
out:
	free(dir);
	return rc;
}

/* catching_up: poll until the fresh node streams within the lag bound. */
static int catch_up(struct rotation *rot, char *err)
{
	struct cluster *cl = rot->cl;
	int64_t deadline = now_ms() + cl->cfg->catch_up_timeout_ms;
	struct catch_up cu = {0};
	char last[ERRLEN] = "";

	for (;;) {
		if (stopping(rot, err))
			return -1;
		if (cl->adapter->catch_up(cl, &rot->fresh, &rot->primary, &cu,
					  last, sizeof(last)) == 0 &&
		    cu.streaming && cu.lag_bytes <= cl->cfg->max_lag_bytes)
			break;

		/*
		 * A primary that died meanwhile will not be started again by
		 * the health check while this rotation holds the job lock:
		 * end the rotation now, so that it can.
		 */
		if (!cl->adapter->running(cl, &rot->primary)) {
			snprintf(err, ERRLEN,
				 "the primary, generation %d, stopped running "
				 "while the fresh node caught up",
				 rot->primary.generation);
			return -1;
		}
		if (now_ms() > deadline) {
			snprintf(err, ERRLEN,
				 "fresh node did not catch up within %" PRId64
				 " ms: %s",
				 cl->cfg->catch_up_timeout_ms,
				 last[0] ? last : cu.detail);
			return -1;
		}
		sleep_ms(CATCH_UP_POLL_MS);
	}
	milestone(rot, "+caught-up", "%s", cu.detail);
	return 0;
}

static void set_flag(struct rotation *rot, bool *flag)
{
	pthread_mutex_lock(&rot->cl->lock);
	*flag = true;
	pthread_mutex_unlock(&rot->cl->lock);
}

/*
 * The members after the commit point: the fresh node is the primary,
 * the old one retired.  Saved durably before the endpoint moves.
 */
static int make_primary(struct rotation *rot)
{
	struct cluster *cl = rot->cl;
	struct node *fresh, *old;
	int rc;

	pthread_mutex_lock(&cl->lock);
	rot->committed = true;
	fresh = cluster_node(cl, rot->fresh.generation);
	old = cluster_node(cl, rot->old.generation);
	if (fresh)
		fresh->role = NODE_PRIMARY;
	if (old)
		old->role = NODE_RETIRED;
	rot->fresh.role = NODE_PRIMARY;
	rc = cluster_save_state(cl);
	pthread_mutex_unlock(&cl->lock);
	return rc;
}

/*
 * Step 5 of the switch, past the commit point: promote the fresh node,
 * asking again (each time with a new switch_timeout) if it does not
 * confirm.  The adapter confirms a node that is already promoted, so
 * asking twice is harmless.
 */
static void promote(struct rotation *rot, int64_t deadline, char *err)
{
	struct cluster *cl = rot->cl;

	for (int i = 0; i < PROMOTE_TRIES; i++) {
		if (cl->adapter->promote(cl, &rot->fresh, deadline, err,
					 ERRLEN) == 0) {
			milestone(rot, "+promoted",
				  "generation %d is the primary",
				  rot->fresh.generation);
			return;
		}
		slog_error(cl->scope, "rotation %s: %s%s", rot->id, err,
			   i + 1 < PROMOTE_TRIES ? "; asking again" : "");
		deadline = now_ms() + cl->cfg->switch_timeout_ms;
	}
	set_flag(rot, &rot->unconfirmed);
	milestone(rot, "-promotion-unconfirmed", "%s", err);
}

/*
 * switching, the hard part.  Invariant 1 (never two writable primaries)
 * and 2 (no acknowledged write lost) rest on its order:
 *
 * 1. CHECKPOINT on the old primary while it still serves, so that the
 *    shutdown checkpoint in step 3 has little to write;
 * 2. hold the endpoint: new connections wait instead of reaching the old
 *    primary;
 * 3. fence the old primary (fast shutdown): its sessions end, nothing
 *    more is acknowledged, and its last WAL goes to the fresh node;
 * 4. wait until the fresh node has replayed past the old primary's end;
 * 5. journal the commit, then promote the fresh node (the commit point);
 * 6. record the new members, point the endpoint at the fresh node and
 *    release the held connections.
 *
 * Steps 3 to 5 share one deadline: switch_timeout, and never later than
 * the endpoint's hold_ms, after which held clients would be let through
 * to the fenced old primary anyway.
 *
 * A failure in steps 1 to 4 returns -1 with the old primary fenced or
 * not (rot->fenced); the caller rolls back.  From step 5 on it returns 0
 * and failures are logged: the rotation can only go forward.  A promotion
 * that is never confirmed leaves rot->unconfirmed set, and the old node
 * is then kept, stopped, for an operator.
 */
static int switch_over(struct rotation *rot, char *err)
{
	struct cluster *cl = rot->cl;
	struct fence_point point;
	int64_t pause, deadline, bound;

	/* Step 1. */
	if (cl->adapter->prepare_switch(cl, &rot->old, err, ERRLEN) == -1)
		return -1;

	/* Step 2. */
	endpoint_hold(cl->endpoint);
	rot->hold_started = now_ms();
	bound = cl->cfg->switch_timeout_ms < cl->cfg->hold_ms
			? cl->cfg->switch_timeout_ms
			: cl->cfg->hold_ms;
	deadline = rot->hold_started + bound;
	set_flag(rot, &rot->held);
	milestone(rot, "+held", "endpoint holds new connections");

	/* Step 3. */
	set_flag(rot, &rot->fenced);
	if (journal_sync(rot) == -1) {
		snprintf(err, ERRLEN, "could not journal the fence");
		return -1;
	}
	if (cl->adapter->fence(cl, &rot->old, &point, deadline, err, ERRLEN) ==
	    -1)
		return -1;
	milestone(rot, "+fenced", "old primary ended at %s", point.position);

	/* Step 4. */
	if (cl->adapter->wait_replayed(cl, &rot->fresh, &point, deadline, err,
				       ERRLEN) == -1)
		return -1;

	/* Step 5. */
	pthread_mutex_lock(&cl->lock);
	rot->committed = true;
	pthread_mutex_unlock(&cl->lock);
	if (journal_sync(rot) == -1) {
		pthread_mutex_lock(&cl->lock);
		rot->committed = false;
		pthread_mutex_unlock(&cl->lock);
		snprintf(err, ERRLEN, "could not journal the commit point");
		return -1;
	}
	promote(rot, deadline, err);

	/* Step 6. */
	if (make_primary(rot) == -1)
		slog_error(cl->scope, "rotation %s: could not save members",
			   rot->id);
	endpoint_release(cl->endpoint, rot->fresh.host, rot->fresh.port);
	pause = now_ms() - rot->hold_started;
	/*
	 * Sessions still open to the old node (a paused Redis keeps its
	 * clients) end now, so that no client writes to it again.
	 */
	endpoint_drop_sessions(cl->endpoint);
	cluster_publish(cl);
	pthread_mutex_lock(&cl->lock);
	rot->held = false;
	rot->write_pause_ms = pause;
	pthread_mutex_unlock(&cl->lock);
	milestone(rot, "+released", "connections held for %" PRId64 " ms",
		  pause);
	return 0;
}

/* Stop and destroy node N and drop it from the members. */
static int destroy_node(struct cluster *cl, struct node *n, char *err)
{
	int rc;

	if (cl->adapter->stop(cl, n, err, ERRLEN) == -1 ||
	    prov_destroy(cl, n, err, ERRLEN) == -1)
		return -1;
	pthread_mutex_lock(&cl->lock);
	cluster_remove_node(cl, n->generation);
	rc = cluster_save_state(cl);
	pthread_mutex_unlock(&cl->lock);
	return rc;
}

/* tearing_down: the old node's processes gone, its directory removed. */
static int tear_down(struct rotation *rot, char *err)
{
	for (int i = 0; i < TEARDOWN_TRIES; i++) {
		if (destroy_node(rot->cl, &rot->old, err) == 0) {
			milestone(rot, "+torn-down", "generation %d destroyed",
				  rot->old.generation);
			return 0;
		}
		slog_warning(rot->cl->scope, "rotation %s: %s", rot->id, err);
		sleep_ms(1000);
	}
	return -1;
}

/*
 * Undo what the rotation did before the commit point: the old primary
 * serves again, the endpoint lets the held connections through to it, the
 * fresh node is destroyed.
 */
static void roll_back(struct rotation *rot)
{
	struct cluster *cl = rot->cl;
	char err[ERRLEN];

	if (rot->fenced &&
	    cl->adapter->unfence(cl, &rot->old, err, ERRLEN) == -1)
		slog_error(cl->scope,
			   "rotation %s: could not restart the old primary: %s",
			   rot->id, err);
	if (rot->held) {
		endpoint_release(cl->endpoint, rot->old.host, rot->old.port);
		pthread_mutex_lock(&cl->lock);
		rot->held = false;
		rot->write_pause_ms = now_ms() - rot->hold_started;
		pthread_mutex_unlock(&cl->lock);
	}
	if (rot->have_fresh && destroy_node(cl, &rot->fresh, err) == -1)
		slog_error(cl->scope,
			   "rotation %s: could not destroy the fresh node: %s",
			   rot->id, err);
	if (!rot->replica && rot->old.generation &&
	    cl->adapter->release_restore_point)
		cl->adapter->release_restore_point(cl, &rot->old);
	cluster_publish(cl);
}

static void finish(struct rotation *rot, enum rotation_state end,
		   const char *reason)
{
	struct cluster *cl = rot->cl;
	json_t *fields;

	pthread_mutex_lock(&cl->lock);
	if (reason)
		snprintf(rot->abort_reason, sizeof(rot->abort_reason), "%s",
			 reason);
	pthread_mutex_unlock(&cl->lock);
	if (rotation_enter(rot, end, reason) == -1)
		slog_error(cl->scope, "rotation %s: could not journal its end",
			   rot->id);
	else if (journal_trim(cl->daemon->journal) == -1)
		slog_error(cl->scope, "rotation %s: could not trim the journal",
			   rot->id);
	fields = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:O}", "rotation",
			   rot->id, "restore_point", rot->restore_point,
			   "reason", reason ? reason : "", "old_generation",
			   rot->old.generation, "new_generation",
			   rot->have_fresh ? rot->fresh.generation : 0,
			   "write_pause_ms", (json_int_t)rot->write_pause_ms,
			   "nodes", rot->nodes);
	if (audit_append(cl->daemon->audit,
			 end == ROT_DONE ? "rotation_done" : "rotation_aborted",
			 cl->cfg->name, fields) == -1)
		slog_error(cl->scope, "rotation %s: could not record its end",
			   rot->id);
	json_decref(fields);
	daemon_event(cl->daemon, cl->cfg->name,
		     end == ROT_DONE ? "+rotation-done" : "-rotation-abort",
		     rot->id, "%s", reason ? reason : "");
	pthread_mutex_lock(&cl->lock);
	rot->finished_at = wall_ms();
	if (end == ROT_DONE)
		cl->last_rotation_at = rot->finished_at;
	json_decref(cl->last_rotation);
	cl->last_rotation = rotation_to_json(rot);
	if (cluster_save_state(cl) == -1)
		slog_error(cl->scope, "could not save cluster state");
	if (cl->running == rot)
		cl->running = NULL;
	pthread_mutex_unlock(&cl->lock);
}

static void finish_unconfirmed(struct rotation *rot, const char *err)
{
	char reason[ERRLEN];

	snprintf(
		reason, sizeof(reason),
		"promotion of generation %d was not confirmed (%s); generation %d is kept, stopped",
		rot->fresh.generation, err, rot->old.generation);
	slog_error(rot->cl->scope, "rotation %s: %s", rot->id, reason);
	finish(rot, ROT_DONE, reason);
}

/*
 * Set the rotation's restore point aside for REASON and, if a fresh node
 * was made from it, destroy that node.  Returns 0, or -1 after writing
 * ERR when the node could not be destroyed.
 */
static int reject_restore_point(struct rotation *rot, const char *reason,
				char *err)
{
	struct cluster *cl = rot->cl;

	milestone(rot, "-restore-point-rejected", "%s: %s", rot->restore_point,
		  reason);
	store_reject(cl, rot->restore_point, reason);
	if (!rot->have_fresh)
		return 0;
	if (destroy_node(cl, &rot->fresh, err) == -1)
		return -1;
	pthread_mutex_lock(&cl->lock);
	rot->have_fresh = false;
	pthread_mutex_unlock(&cl->lock);
	node_release(&rot->fresh);
	return journal_sync(rot);
}

/*
 * planned and provisioning, with a fallback.  A restore point whose
 * manifest does not match its audit record, or whose files do not match
 * their manifest as they are laid down, is set aside (invariant 3) and
 * the next newest is tried, up to SEED_TRIES; with none left, a fresh one
 * is taken.  Returns 0 once a fresh node is seeded and started.
 */
static int plan_and_provision(struct rotation *rot, char *err)
{
	char why[ERRLEN];

	for (int i = 0; i < SEED_TRIES; i++) {
		bool bad = false;
		json_t *manifest = plan(rot, &bad, err);
		int rc;

		if (!manifest && !bad)
			return -1;
		if (manifest) {
			rc = rotation_enter(rot, ROT_PROVISIONING,
					    rot->restore_point);
			if (rc == 0)
				rc = provision(rot, manifest, err);
			json_decref(manifest);
			if (rc != -2)
				return rc;
		}
		snprintf(why, sizeof(why), "%s", err);
		if (reject_restore_point(rot, why, err) == -1)
			return -1;
	}
	snprintf(err, ERRLEN, "no restore point verified in %d tries",
		 SEED_TRIES);
	return -1;
}

/*
 * A replica's switch, with no write pause (the endpoint is not held):
 *
 * 1. journal the commit point, then record the fresh node as a replica
 *    and the old one as retired;
 * 2. publish: the read endpoint sends new sessions to the fresh replica
 *    and none to the old one;
 * 3. drain: wait, at most switch_timeout, for the old replica's read
 *    sessions to end, then close what is left.
 *
 * A leg that adds a replica stops after step 2; one that removes a
 * replica has no fresh node and only retires the old one.  Returns 0, or
 * -1 before the commit point.
 */
static int join_replica(struct rotation *rot, char *err)
{
	struct cluster *cl = rot->cl;
	int64_t deadline = now_ms() + cl->cfg->switch_timeout_ms;
	struct node *n;
	int rc;

	pthread_mutex_lock(&cl->lock);
	rot->committed = true;
	pthread_mutex_unlock(&cl->lock);
	if (journal_sync(rot) == -1) {
		pthread_mutex_lock(&cl->lock);
		rot->committed = false;
		pthread_mutex_unlock(&cl->lock);
		snprintf(err, ERRLEN, "could not journal the commit point");
		return -1;
	}
	pthread_mutex_lock(&cl->lock);
	if (rot->have_fresh && (n = cluster_node(cl, rot->fresh.generation)))
		n->role = rot->fresh.role = NODE_REPLICA;
	if (rot->old.generation && (n = cluster_node(cl, rot->old.generation)))
		n->role = NODE_RETIRED;
	rc = cluster_save_state(cl);
	pthread_mutex_unlock(&cl->lock);
	if (rc == -1)
		slog_error(cl->scope, "rotation %s: could not save members",
			   rot->id);
	cluster_publish(cl);
	if (rot->have_fresh)
		milestone(rot, "+joined", "generation %d serves reads",
			  rot->fresh.generation);
	if (!rot->old.generation || !cl->reader)
		return 0;

	while (endpoint_sessions_to(cl->reader, rot->old.host, rot->old.port) >
		       0 &&
	       now_ms() < deadline)
		sleep_ms(50);
	endpoint_drop_sessions(cl->reader);
	milestone(rot, "+drained", "generation %d serves no reads",
		  rot->old.generation);
	return 0;
}

/*
 * After a primary's leg: make every replica follow the new primary.  A
 * replica that does not is taken out of the read set at once and, once
 * every other replica has been asked, destroyed (a hung one can take a
 * while to stop), rather than left following a node that is gone; the
 * daemon adds a fresh one in its place.
 */
static void follow_primary(struct rotation *rot)
{
	struct cluster *cl = rot->cl;
	struct node replicas[MAX_REPLICAS + 1];
	bool lost[MAX_REPLICAS + 1] = {false};
	int n = 0;
	char err[ERRLEN];

	if (!cl->adapter->follow)
		return;
	pthread_mutex_lock(&cl->lock);
	for (int i = 0; i < cl->n_nodes && n <= MAX_REPLICAS; i++)
		if (cl->nodes[i].role == NODE_REPLICA)
			node_copy(&replicas[n++], &cl->nodes[i]);
	pthread_mutex_unlock(&cl->lock);

	for (int i = 0; i < n; i++) {
		struct node *r = &replicas[i];

		if (cl->adapter->follow(cl, r, &rot->fresh,
					now_ms() + cl->cfg->switch_timeout_ms,
					err, ERRLEN) == 0) {
			milestone(rot, "+followed",
				  "generation %d follows generation %d",
				  r->generation, rot->fresh.generation);
			continue;
		}
		milestone(rot, "-replica-lost", "generation %d: %s",
			  r->generation, err);
		cluster_retire_replica(cl, r->generation);
		lost[i] = true;
	}
	for (int i = 0; i < n; i++) {
		if (lost[i] && destroy_node(cl, &replicas[i], err) == -1)
			slog_error(cl->scope, "rotation %s: %s", rot->id, err);
		node_release(&replicas[i]);
	}
}

/*
 * Steps of one leg up to and including its commit point.  Returns 0
 * once the fresh node holds its place, or -1 with the reason in ERR.
 */
static int run_to_commit(struct rotation *rot, char *err)
{
	struct cluster *cl = rot->cl;
	bool provisions = rot->legs[rot->leg].kind != LEG_REMOVE;
	int rc = -1;

	if (provisions && plan_and_provision(rot, err) == -1)
		goto out;
	if (provisions && (stopping(rot, err) ||
			   rotation_enter(rot, ROT_CATCHING_UP, NULL) == -1 ||
			   catch_up(rot, err) == -1))
		goto out;
	if (provisions &&
	    (stopping(rot, err) ||
	     rotation_enter(rot, ROT_VERIFYING, NULL) == -1 ||
	     cl->adapter->verify_replica(cl, &rot->fresh, &rot->primary, err,
					 ERRLEN) == -1))
		goto out;
	if (stopping(rot, err) ||
	    rotation_enter(rot, ROT_SWITCHING, NULL) == -1 ||
	    (rot->replica ? join_replica(rot, err) : switch_over(rot, err)) ==
		    -1)
		goto out;
	rc = 0;
out:
	if (rc == -1 && !err[0])
		snprintf(err, ERRLEN, "could not write the journal");
	return rc;
}

/* Add what leg ROT->leg did to the rotation's summary. */
static void sum_up_leg(struct rotation *rot)
{
	json_t *j =
		json_pack("{s:s, s:i, s:i, s:s, s:s}", "kind",
			  leg_names[rot->legs[rot->leg].kind], "old_generation",
			  rot->old.generation, "new_generation",
			  rot->have_fresh ? rot->fresh.generation : 0, "role",
			  rot->replica ? "replica" : "primary", "restore_point",
			  rot->restore_point);

	if (!rot->replica)
		json_object_set_new(j, "write_pause_ms",
				    json_integer(rot->write_pause_ms));
	pthread_mutex_lock(&rot->cl->lock);
	json_array_append_new(rot->nodes, j);
	pthread_mutex_unlock(&rot->cl->lock);
}

/*
 * Make leg I the current one: the member it replaces, the primary its
 * fresh node follows, the flags cleared.  Returns false when the member
 * is gone (destroyed by an earlier leg): the leg is skipped.
 */
static bool begin_leg(struct rotation *rot, int i)
{
	struct cluster *cl = rot->cl;
	const struct leg *leg = &rot->legs[i];
	struct node *old = NULL, *primary;
	bool ok;

	pthread_mutex_lock(&cl->lock);
	node_release(&rot->old);
	node_release(&rot->fresh);
	node_release(&rot->primary);
	memset(&rot->old, 0, sizeof(rot->old));
	memset(&rot->fresh, 0, sizeof(rot->fresh));
	memset(&rot->primary, 0, sizeof(rot->primary));
	rot->leg = i;
	rot->have_fresh = rot->held = rot->fenced = false;
	rot->committed = rot->unconfirmed = false;
	rot->restore_point[0] = '\0';
	primary = cluster_primary(cl);
	if (leg->kind != LEG_ADD)
		old = cluster_node(cl, leg->generation);
	ok = primary && (leg->kind == LEG_ADD || old);
	if (ok) {
		node_copy(&rot->primary, primary);
		if (old)
			node_copy(&rot->old, old);
		rot->replica = !old || old->role != NODE_PRIMARY;
	}
	pthread_mutex_unlock(&cl->lock);
	return ok;
}

/* "generation 3, a replica, leg 1 of 3" for the step list. */
static void announce_leg(struct rotation *rot)
{
	char what[64];

	if (rot->legs[rot->leg].kind == LEG_ADD)
		snprintf(what, sizeof(what), "a new replica");
	else
		snprintf(what, sizeof(what), "%s generation %d",
			 rot->legs[rot->leg].kind == LEG_REMOVE ? "remove"
								: "replace",
			 rot->old.generation);
	if (rot->legs[rot->leg].kind == LEG_ADD)
		milestone(rot, "+node", "%s, leg %d of %d", what, rot->leg + 1,
			  rot->n_legs);
	else
		milestone(rot, "+node", "%s, %s, leg %d of %d", what,
			  rot->replica ? "a replica" : "the primary",
			  rot->leg + 1, rot->n_legs);
}

/*
 * One leg from planned to its teardown.  Returns 0, or -1 after rolling
 * back with the reason in ERR: the rotation ends there.
 */
static int run_leg(struct rotation *rot, char *err)
{
	struct cluster *cl = rot->cl;

	if (rot->leg > 0 && rotation_enter(rot, ROT_PLANNED, NULL) == -1) {
		snprintf(err, ERRLEN, "could not write the journal");
		return -1;
	}
	announce_leg(rot);
	if (journal_sync(rot) == -1) {
		snprintf(err, ERRLEN, "could not write the journal");
		return -1;
	}
	if (run_to_commit(rot, err) == -1) {
		slog_warning(cl->scope, "rotation %s aborted: %s", rot->id,
			     err);
		roll_back(rot);
		if (rot->n_legs > 1) {
			char why[ERRLEN];

			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, ERRLEN, "%.400s (leg %d of %d)", why,
				 rot->leg + 1, rot->n_legs);
		}
		return -1;
	}
	if (rot->unconfirmed)
		return 0;
	if (!rot->replica)
		follow_primary(rot);
	err[0] = '\0';
	if (rot->old.generation &&
	    (rotation_enter(rot, ROT_TEARING_DOWN, NULL) == -1 ||
	     tear_down(rot, err) == -1))
		slog_error(cl->scope, "rotation %s: teardown incomplete: %s",
			   rot->id, err[0] ? err : "journal");
	sum_up_leg(rot);
	return 0;
}

static void *rotation_main(void *arg)
{
	struct rotation *rot = arg;
	struct cluster *cl = rot->cl;
	char err[ERRLEN] = "";
	int rc = 0, done = 0;

	pthread_mutex_lock(&cl->job_lock);
	for (int i = 0; i < rot->n_legs && rc == 0 && !rot->unconfirmed; i++) {
		if (!begin_leg(rot, i)) {
			milestone(rot, "-node-gone", "leg %d of %d skipped",
				  i + 1, rot->n_legs);
			continue;
		}
		rc = run_leg(rot, err);
		done += rc == 0;
	}
	if (rc == -1) {
		finish(rot, ROT_ABORTED, err);
	} else if (rot->unconfirmed) {
		/*
		 * The old node stays, fenced and stopped: the fresh node
		 * has every write, but until it is confirmed writable the
		 * old one is the only other copy.
		 */
		finish_unconfirmed(rot, err);
	} else if (done == 0) {
		finish(rot, ROT_ABORTED, "every node to replace was gone");
	} else {
		finish(rot, ROT_DONE, NULL);
		store_prune(cl);
	}
	pthread_mutex_unlock(&cl->job_lock);
	pthread_mutex_lock(&cl->lock);
	rot->finished = true;
	pthread_mutex_unlock(&cl->lock);
	return NULL;
}

/* Keep ROT in CL's history, dropping the oldest finished one if full. */
static void remember(struct cluster *cl, struct rotation *rot)
{
	if (cl->n_history == CLUSTER_HISTORY) {
		/* 32 rotations old: its thread has long returned. */
		if (cl->history[0]->thread)
			pthread_join(cl->history[0]->thread, NULL);
		rotation_free(cl->history[0]);
		memmove(cl->history, cl->history + 1,
			sizeof(*cl->history) * (CLUSTER_HISTORY - 1));
		cl->n_history--;
	}
	cl->history[cl->n_history++] = rot;
}

/*
 * The legs that replace NODE (see rotation_start()), into ROT.  Caller
 * holds cl->lock.  Returns 0, or the HTTP status that fits after writing
 * ERR.
 */
static int plan_legs(struct cluster *cl, struct rotation *rot, int node,
		     char *err, size_t errlen)
{
	struct node *primary = cluster_primary(cl), *n;
	int replicas = 0, surplus, seen = 0;

	for (int i = 0; i < cl->n_nodes; i++)
		replicas += cl->nodes[i].role == NODE_REPLICA;
	surplus = replicas - cl->cfg->replicas;

	/* Members are in generation order: the oldest replicas go first. */
	for (int i = 0; i < cl->n_nodes; i++) {
		n = &cl->nodes[i];
		if (n->role != NODE_REPLICA)
			continue;
		seen++;
		if (node == ROTATE_ALL && rot->n_legs < ROTATION_MAX_LEGS - 1)
			rot->legs[rot->n_legs++] =
				(struct leg){LEG_REPLACE, n->generation};
		else if (node == ROTATE_REPLICAS && seen <= surplus &&
			 rot->n_legs < ROTATION_MAX_LEGS)
			rot->legs[rot->n_legs++] =
				(struct leg){LEG_REMOVE, n->generation};
	}
	if (node == ROTATE_ALL) {
		rot->legs[rot->n_legs++] =
			(struct leg){LEG_REPLACE, primary->generation};
	} else if (node == ROTATE_REPLICAS) {
		for (int i = replicas;
		     i < cl->cfg->replicas && rot->n_legs < ROTATION_MAX_LEGS;
		     i++)
			rot->legs[rot->n_legs++] = (struct leg){LEG_ADD, 0};
		if (rot->n_legs == 0) {
			snprintf(err, errlen, "cluster \"%s\" has %d replicas",
				 cl->cfg->name, replicas);
			return 409;
		}
	} else {
		n = cluster_node(cl, node);
		if (!n ||
		    (n->role != NODE_PRIMARY && n->role != NODE_REPLICA)) {
			snprintf(err, errlen,
				 "cluster \"%s\" has no primary or replica of "
				 "generation %d",
				 cl->cfg->name, node);
			return 404;
		}
		rot->legs[rot->n_legs++] = (struct leg){LEG_REPLACE, node};
	}
	return 0;
}

static struct rotation *rotation_new(struct cluster *cl, const char *reason,
				     const char *requester)
{
	struct rotation *rot = xcalloc(1, sizeof(*rot));

	snprintf(rot->id, sizeof(rot->id), "%s-r%d", cl->cfg->name,
		 cl->next_rotation++);
	rot->cl = cl;
	rot->reason = xstrdup(reason ? reason : "");
	rot->requester = xstrdup(requester ? requester : "");
	rot->state = ROT_PLANNED;
	rot->requested_at = wall_ms();
	rot->write_pause_ms = -1;
	rot->steps = json_array();
	rot->nodes = json_array();
	return rot;
}

static void record_request(struct rotation *rot)
{
	json_t *legs = json_array();
	json_t *fields;

	for (int i = 0; i < rot->n_legs; i++)
		json_array_append_new(
			legs, json_pack("{s:s, s:i}", "kind",
					leg_names[rot->legs[i].kind],
					"generation", rot->legs[i].generation));
	fields = json_pack("{s:s, s:s, s:s, s:o}", "rotation", rot->id,
			   "reason", rot->reason, "requester", rot->requester,
			   "legs", legs);

	if (audit_append(rot->cl->daemon->audit, "rotation_requested",
			 rot->cl->cfg->name, fields) == -1)
		log_error("rotation %s: could not record the request", rot->id);
	json_decref(fields);
}

struct rotation *rotation_start(struct cluster *cl, const char *reason,
				const char *requester, int node, int *status,
				char *err, size_t errlen)
{
	struct rotation *rot;

	*status = 409;
	pthread_mutex_lock(&cl->lock);
	if (cl->daemon->stopping || !cl->bootstrapped) {
		snprintf(err, errlen, "cluster \"%s\" is %s", cl->cfg->name,
			 cl->daemon->stopping ? "stopping" : "not ready");
		pthread_mutex_unlock(&cl->lock);
		return NULL;
	}
	if (cl->running) {
		snprintf(err, errlen, "rotation %s is already running",
			 cl->running->id);
		pthread_mutex_unlock(&cl->lock);
		return NULL;
	}
	if (!cluster_primary(cl)) {
		snprintf(err, errlen, "cluster \"%s\" has no primary yet",
			 cl->cfg->name);
		pthread_mutex_unlock(&cl->lock);
		return NULL;
	}
	if (cl->primary_down) {
		snprintf(err, errlen,
			 "the primary of cluster \"%s\" is down: no node can "
			 "catch up from it",
			 cl->cfg->name);
		pthread_mutex_unlock(&cl->lock);
		return NULL;
	}
	rot = rotation_new(cl, reason, requester);
	*status = plan_legs(cl, rot, node, err, errlen);
	if (*status != 0) {
		/* Its number is not taken: no rotation was started. */
		cl->next_rotation--;
		pthread_mutex_unlock(&cl->lock);
		rotation_free(rot);
		return NULL;
	}
	*status = 500;
	if (cluster_save_state(cl) == -1) {
		pthread_mutex_unlock(&cl->lock);
		rotation_free(rot);
		snprintf(err, errlen, "could not save cluster state");
		return NULL;
	}

	/*
	 * Journaled before it is recorded as requested, so that a daemon
	 * that stops before its first leg begins still ends it, as aborted,
	 * at the next start.
	 */
	if (journal_sync(rot) == -1) {
		pthread_mutex_unlock(&cl->lock);
		rotation_free(rot);
		snprintf(err, errlen, "could not write the journal");
		return NULL;
	}
	*status = 0;
	remember(cl, rot);
	cl->running = rot;
	add_step(rot, "planned", rot->reason);
	pthread_mutex_unlock(&cl->lock);

	record_request(rot);
	daemon_event(cl->daemon, cl->cfg->name, "+rotation-start", rot->id,
		     "reason \"%s\", requested by %s", rot->reason,
		     rot->requester);
	if (pthread_create(&rot->thread, NULL, rotation_main, rot) != 0)
		abort();
	return rot;
}

struct rotation *rotation_find(struct cluster *cl, const char *id)
{
	for (int i = 0; i < cl->n_history; i++)
		if (strcmp(cl->history[i]->id, id) == 0)
			return cl->history[i];
	return NULL;
}

json_t *rotation_to_json(struct rotation *rot)
{
	char requested[32], finished[32] = "";
	json_t *j;

	format_time(rot->requested_at, requested, sizeof(requested));
	if (rot->finished_at)
		format_time(rot->finished_at, finished, sizeof(finished));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:O}", "id",
		      rot->id, "cluster", rot->cl->cfg->name, "state",
		      state_names[rot->state], "reason", rot->reason,
		      "requester", rot->requester, "restore_point",
		      rot->restore_point, "old_generation", rot->old.generation,
		      "requested_at", requested, "steps", rot->steps);
	json_object_set_new(j, "leg", json_integer(rot->leg + 1));
	json_object_set_new(j, "legs", json_integer(rot->n_legs));
	json_object_set_new(j, "nodes", json_copy(rot->nodes));
	if (rot->have_fresh)
		json_object_set_new(j, "new_generation",
				    json_integer(rot->fresh.generation));
	if (rot->finished_at)
		json_object_set_new(j, "finished_at", json_string(finished));
	if (rot->write_pause_ms >= 0)
		json_object_set_new(j, "write_pause_ms",
				    json_integer(rot->write_pause_ms));
	if (rot->state == ROT_ABORTED)
		json_object_set_new(j, "abort_reason",
				    json_string(rot->abort_reason));
	else if (rot->state == ROT_DONE && rot->abort_reason[0])
		json_object_set_new(j, "warning",
				    json_string(rot->abort_reason));
	return j;
}

bool rotation_reap(struct rotation *rot)
{
	if (!rot->finished)
		return false;
	if (rot->thread) {
		pthread_join(rot->thread, NULL);
		rot->thread = 0;
	}
	return true;
}

void rotation_free(struct rotation *rot)
{
	if (!rot)
		return;
	node_release(&rot->old);
	node_release(&rot->fresh);
	node_release(&rot->primary);
	json_decref(rot->steps);
	json_decref(rot->nodes);
	free(rot->reason);
	free(rot->requester);
	free(rot);
}

/*
 * Recovery after a crash.  The journal says how far the rotation got:
 *
 * - not committed: the fresh node (if any) is destroyed and the old
 *   primary restarted if it had been fenced; the rotation is recorded as
 *   aborted;
 * - committed: the promotion may or may not have happened, so it is asked
 *   for again (promoting a primary is harmless), the members are set, the
 *   replicas follow the new primary, the old node is destroyed, and the
 *   rotation recorded as done;
 * - a replica's leg, committed: the members are set and the old replica
 *   destroyed.
 *
 * Legs not yet begun are not run; the reason says how many.
 */
int rotation_recover(struct cluster *cl, json_t *record)
{
	struct rotation *rot;
	const char *id = json_string_value(json_object_get(record, "rotation"));
	const char *rp =
		json_string_value(json_object_get(record, "restore_point"));
	int state = state_from_name(
		json_string_value(json_object_get(record, "state")));
	char err[ERRLEN], reason[ERRLEN];

	if (!id || state < 0 ||
	    !json_is_object(json_object_get(record, "old"))) {
		log_error("journal record of rotation \"%s\" is incomplete",
			  id ? id : "?");
		return -1;
	}
	rot = xcalloc(1, sizeof(*rot));
	snprintf(rot->id, sizeof(rot->id), "%s", id);
	snprintf(rot->restore_point, sizeof(rot->restore_point), "%s",
		 rp ? rp : "");
	rot->cl = cl;
	rot->reason = xstrdup("recovery");
	rot->requester = xstrdup("rotator");
	rot->state = (enum rotation_state)state;
	rot->steps = json_array();
	rot->nodes = json_array();
	rot->write_pause_ms = -1;
	rot->requested_at = wall_ms();
	rot->n_legs = 1;
	rot->legs[0].kind = LEG_REPLACE;
	for (int k = 0; k < 3; k++)
		if (strcmp(leg_names[k],
			   json_string_value(json_object_get(record, "kind"))
				   ?: "replace") == 0)
			rot->legs[0].kind = (enum leg_kind)k;
	rot->replica = json_is_true(json_object_get(record, "replica"));
	rot->fenced = json_is_true(json_object_get(record, "fenced"));
	rot->committed = json_is_true(json_object_get(record, "committed"));
	if (node_from_json(json_object_get(record, "old"), &rot->old) == -1 ||
	    (json_object_get(record, "primary") &&
	     node_from_json(json_object_get(record, "primary"),
			    &rot->primary) == -1) ||
	    (json_object_get(record, "fresh") &&
	     node_from_json(json_object_get(record, "fresh"), &rot->fresh) ==
		     -1)) {
		log_error("journal record of rotation \"%s\" has a bad node",
			  id);
		rotation_free(rot);
		return -1;
	}
	rot->have_fresh = json_object_get(record, "fresh") != NULL;
	slog_warning(cl->scope,
		     "rotation %s was in state %s when the daemon stopped; %s",
		     id, state_names[state],
		     rot->committed ? "rolling forward" : "rolling back");

	if (!rot->committed) {
		roll_back(rot);
		snprintf(reason, sizeof(reason), "the daemon stopped during %s",
			 state_names[state]);
		finish(rot, ROT_ABORTED, reason);
	} else if (rot->replica) {
		if (join_replica(rot, err) == -1)
			slog_error(cl->scope, "rotation %s: %s", id, err);
		if (rot->old.generation && tear_down(rot, err) == -1)
			slog_error(cl->scope, "rotation %s: %s", id, err);
		finish(rot, ROT_DONE, NULL);
	} else {
		promote(rot, now_ms() + cl->cfg->switch_timeout_ms, err);
		if (make_primary(rot) == -1)
			slog_error(cl->scope,
				   "rotation %s: could not save members", id);
		if (rot->unconfirmed) {
			finish_unconfirmed(rot, err);
		} else {
			follow_primary(rot);
			if (tear_down(rot, err) == -1)
				slog_error(cl->scope, "rotation %s: %s", id,
					   err);
			finish(rot, ROT_DONE, NULL);
		}
	}
	rot->finished = true;
	pthread_mutex_lock(&cl->lock);
	remember(cl, rot);
	pthread_mutex_unlock(&cl->lock);
	return 0;
}
