/*
 * daemon.c: "rotator serve", the coordinator's process (see daemon.h).
 *
 * Start-up, in order: the configuration and every secret it names (a bad
 * one stops us with status 2 before anything acts); the audit log and the
 * journal; each cluster's state, endpoint and interrupted work; then the
 * loop.  Rotations left in flight by a crash are settled before the loop
 * starts, so that no endpoint forwards to a node that is half replaced.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "adapters/adapter.h"
#include "rotator/api.h"
#include "rotator/audit.h"
#include "rotator/cluster.h"
#include "rotator/daemon.h"
#include "rotator/endpoint.h"
#include "rotator/journal.h"
#include "rotator/log.h"
#include "rotator/provisioner.h"
#include "rotator/rotation.h"
#include "rotator/sentinel.h"
#include "snapshots/store.h"

#define ERRLEN 512
#define TICK_MS 1000
#define START_TRIES 5
#define REPLICA_RETRY_MS 30000 /* after a failed replica change */
#define HEALTH_EVERY_MS 10000  /* members' health checks */
#define HEALTH_STRIKES 2       /* failed checks in a row: replaced */

static struct daemon *the_daemon;

void daemon_event(struct daemon *d, const char *cluster, const char *token,
		  const char *subject, const char *fmt, ...)
{
	char detail[ERRLEN], when[32];
	va_list ap;
	json_t *ev;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	format_time(wall_ms(), when, sizeof(when));
	log_at(token[0] == '-' ? LOG_WARNING : LOG_INFO, cluster, "%s %s %s",
	       token, subject ? subject : "", detail);
	ev = json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "time", when, "event",
		       token, "cluster", cluster, "subject", subject, "detail",
		       detail);
	pthread_mutex_lock(&d->events_lock);
	json_decref(d->events[d->n_events % DAEMON_EVENTS]);
	d->events[d->n_events % DAEMON_EVENTS] = ev;
	d->n_events++;
	pthread_mutex_unlock(&d->events_lock);
}

json_t *daemon_events(struct daemon *d)
{
	json_t *list = json_array();
	unsigned long first;

	pthread_mutex_lock(&d->events_lock);
	first = d->n_events > DAEMON_EVENTS ? d->n_events - DAEMON_EVENTS : 0;
	for (unsigned long i = first; i < d->n_events; i++)
		json_array_append(list, d->events[i % DAEMON_EVENTS]);
	pthread_mutex_unlock(&d->events_lock);
	return list;
}

struct cluster *daemon_cluster(struct daemon *d, const char *name)
{
	for (int i = 0; i < d->n_clusters; i++)
		if (strcmp(d->clusters[i]->cfg->name, name) == 0)
			return d->clusters[i];
	return NULL;
}

/*
 * Bring generation 1 of CL into being from nothing.  Called by the
 * start-up job with CL->job_lock held.
 */
static int bootstrap_cluster(struct cluster *cl, char *err)
{
	static const char *const origin[] = {
		[BOOTSTRAP_INITDB] = "initdb",
		[BOOTSTRAP_EMPTY] = "empty",
		[BOOTSTRAP_ADOPT] = "adopt",
	};
	bool adopt = cl->cfg->bootstrap == BOOTSTRAP_ADOPT;
	struct node n = {0};
	json_t *fields;
	int rc;

	if (adopt && !cl->adapter->adopt) {
		snprintf(
			err, ERRLEN,
			"bootstrap \"adopt\" is not supported for engine \"%s\"",
			cl->adapter->name);
		return -1;
	}
	pthread_mutex_lock(&cl->lock);
	n.generation = cl->next_generation++;
	pthread_mutex_unlock(&cl->lock);
	n.role = NODE_PRIMARY;
	n.born_from = xstrdup(origin[cl->cfg->bootstrap]);
	n.born_at = wall_ms();
	if (adopt) {
		n.adopted = true;
		snprintf(n.host, sizeof(n.host), "%s", cl->cfg->adopt_host);
		n.port = cl->cfg->adopt_port;
		rc = cl->adapter->adopt(cl, &n, err, ERRLEN);
	} else {
		rc = prov_create(cl, &n, err, ERRLEN);
		if (rc == 0)
			rc = cl->adapter->bootstrap(cl, &n, err, ERRLEN);
	}
	if (rc == 0) {
		pthread_mutex_lock(&cl->lock);
		cluster_add_node(cl, &n);
		rc = cluster_save_state(cl);
		pthread_mutex_unlock(&cl->lock);
		fields =
			json_pack("{s:i, s:i, s:s}", "generation", n.generation,
				  "port", n.port, "born_from", n.born_from);
		if (audit_append(cl->daemon->audit, "node_bootstrapped",
				 cl->cfg->name, fields) == -1)
			rc = -1;
		json_decref(fields);
		daemon_event(cl->daemon, cl->cfg->name, "+bootstrapped", NULL,
			     "generation %d on port %d", n.generation, n.port);
	}
	node_release(&n);
	return rc;
}

/* Take a snapshot of CL now; CL->job_lock is held by the caller. */
static void take_snapshot(struct cluster *cl)
{
	char id[64] = "", err[ERRLEN];

	pthread_mutex_lock(&cl->lock);
	free(cl->snapshot_error);
	cl->snapshot_error = NULL;
	pthread_mutex_unlock(&cl->lock);
	if (store_take(cl, id, err, sizeof(err)) == 0) {
		pthread_mutex_lock(&cl->lock);
		cl->last_snapshot_at = wall_ms();
		if (cluster_save_state(cl) == -1)
			slog_error(cl->scope, "could not save cluster state");
		pthread_mutex_unlock(&cl->lock);
		daemon_event(cl->daemon, cl->cfg->name, "+snapshot-taken", id,
			     "restore point recorded");
		store_prune(cl);
		return;
	}
	daemon_event(cl->daemon, cl->cfg->name, "-snapshot-failed", id, "%s",
		     err);
	pthread_mutex_lock(&cl->lock);
	cl->snapshot_error = xstrdup(err);
	pthread_mutex_unlock(&cl->lock);
}

/*
 * Remove node directories that belong to no member: what a crash left
 * between the provisioner creating a directory and the journal naming
 * it.  A server still running in one is stopped first.
 */
static void sweep_orphans(struct cluster *cl)
{
	char *root = xasprintf("%s/nodes", cl->dir), err[ERRLEN];
	DIR *dir = opendir(root);
	struct dirent *de;

	while (dir && (de = readdir(dir)) != NULL) {
		struct node orphan = {.generation = atoi(de->d_name)};
		bool member;

		if (orphan.generation <= 0)
			continue;
		pthread_mutex_lock(&cl->lock);
		member = cluster_node(cl, orphan.generation) != NULL;
		pthread_mutex_unlock(&cl->lock);
		if (member)
			continue;
		orphan.dir = xasprintf("%s/%s", root, de->d_name);
		slog_warning(cl->scope, "removing \"%s\", which no member owns",
			     orphan.dir);
		if (cl->adapter->stop(cl, &orphan, err, sizeof(err)) == -1 ||
		    prov_destroy(cl, &orphan, err, sizeof(err)) == -1)
			slog_error(cl->scope, "%s", err);
		node_release(&orphan);
	}
	if (dir)
		closedir(dir);
	free(root);
}

/*
 * Start N if it is not running.  A postmaster killed while the daemon
 * was down may leave backends that hold its shared memory for a moment:
 * the start is tried a few times.
 */
static int start_node(struct cluster *cl, struct node *n, char *err)
{
	int rc = -1;

	for (int i = 0; i < START_TRIES; i++) {
		rc = cl->adapter->ensure_running(cl, n, err, ERRLEN);
		if (rc == 0)
			break;
		slog_warning(cl->scope, "could not start generation %d: %s",
			     n->generation, err);
		sleep_ms(1000);
	}
	return rc;
}

/*
 * Start every replica.  One that does not start is destroyed: the
 * replica count is made good again by a fresh one.
 */
static void start_replicas(struct cluster *cl)
{
	struct node replicas[MAX_REPLICAS + 1];
	char err[ERRLEN];
	int n = 0;

	pthread_mutex_lock(&cl->lock);
	for (int i = 0; i < cl->n_nodes && n <= MAX_REPLICAS; i++)
		if (cl->nodes[i].role == NODE_REPLICA)
			node_copy(&replicas[n++], &cl->nodes[i]);
	pthread_mutex_unlock(&cl->lock);
	for (int i = 0; i < n; i++) {
		if (start_node(cl, &replicas[i], err) == -1) {
			slog_error(cl->scope,
				   "replica %d does not start; destroying it",
				   replicas[i].generation);
			if (cl->adapter->stop(cl, &replicas[i], err, ERRLEN) ==
				    0 &&
			    prov_destroy(cl, &replicas[i], err, ERRLEN) == 0) {
				pthread_mutex_lock(&cl->lock);
				cluster_remove_node(cl, replicas[i].generation);
				if (cluster_save_state(cl) == -1)
					slog_error(cl->scope,
						   "could not save members");
				pthread_mutex_unlock(&cl->lock);
			}
		}
		node_release(&replicas[i]);
	}
}

/*
 * Record in the audit log, as WHAT, and as the event "+what" or "-what"
 * (SIGN), that PRIMARY is down, or up again.
 */
static void record_primary(struct cluster *cl, const struct node *primary,
			   const char *what, char sign, const char *why)
{
	json_t *fields = json_pack("{s:i, s:s}", "generation",
				   primary->generation, "reason", why);
	char event[32];

	snprintf(event, sizeof(event), "%c%s", sign, what);
	for (char *c = event; *c; c++)
		if (*c == '_')
			*c = '-';
	daemon_event(cl->daemon, cl->cfg->name, event, NULL,
		     "generation %d%s%s", primary->generation, *why ? ": " : "",
		     why);
	if (audit_append(cl->daemon->audit, what, cl->cfg->name, fields) == -1)
		slog_error(cl->scope, "could not record %s", what);
	json_decref(fields);
}

/*
 * Mark PRIMARY down or up.  While it is down the endpoints forward to no
 * one: anyone on the host could bind the port it left, and would get the
 * clients' passwords.
 */
static void set_primary_down(struct cluster *cl, const struct node *primary,
			     bool down)
{
	pthread_mutex_lock(&cl->lock);
	cl->primary_down = down;
	pthread_mutex_unlock(&cl->lock);
	if (down)
		endpoint_set_targets(cl->endpoint, NULL, 0);
	else
		endpoint_set_target(cl->endpoint, primary->host, primary->port);
	cluster_publish(cl);
}

/*
 * Whether the start-up job must leave PRIMARY down: it is not running, the
 * engine would lose writes by starting it (see restart_lost_primary), and
 * a replica runs, which holds what the primary's last save does not.
 * After a host restart, with every node down, the primary is started.
 */
static bool primary_left_down(struct cluster *cl, struct node *primary)
{
	bool replica_runs = false;

	if (cl->adapter->restart_lost_primary ||
	    cl->adapter->running(cl, primary))
		return false;
	pthread_mutex_lock(&cl->lock);
	for (int i = 0; i < cl->n_nodes && !replica_runs; i++)
		replica_runs = cl->nodes[i].role == NODE_REPLICA &&
			       cl->adapter->running(cl, &cl->nodes[i]);
	pthread_mutex_unlock(&cl->lock);
	if (replica_runs) {
		record_primary(cl, primary, "primary_down", '-',
			       "not started: it would come back with its last "
			       "save only, and its running replicas would drop "
			       "what came after it");
		set_primary_down(cl, primary, true);
	}
	return replica_runs;
}

/*
 * The start-up job of a cluster: make generation 1 or make sure the
 * members run, point the endpoints at them, and have a first restore
 * point.
 */
static void *startup_main(void *arg)
{
	struct cluster *cl = arg;
	char err[ERRLEN] = "";
	struct node primary;
	bool have_primary;
	char id[64];
	int rc;

	pthread_mutex_lock(&cl->job_lock);
	sweep_orphans(cl);
	store_clean_partial(cl);
	pthread_mutex_lock(&cl->lock);
	have_primary = cluster_primary(cl) != NULL;
	if (have_primary)
		node_copy(&primary, cluster_primary(cl));
	pthread_mutex_unlock(&cl->lock);
	if (!have_primary) {
		rc = bootstrap_cluster(cl, err);
	} else if (primary_left_down(cl, &primary)) {
		rc = 0;
		node_release(&primary);
	} else {
		rc = start_node(cl, &primary, err);
		node_release(&primary);
		start_replicas(cl);
	}
	if (rc == 0) {
		pthread_mutex_lock(&cl->lock);
		if (cl->primary_down)
			endpoint_release(cl->endpoint, NULL, 0);
		else
			endpoint_release(cl->endpoint,
					 cluster_primary(cl)->host,
					 cluster_primary(cl)->port);
		pthread_mutex_unlock(&cl->lock);
		cluster_publish(cl);
		if (cl->reader)
			endpoint_release(cl->reader, NULL, 0);
		/*
		 * A first restore point, except of an adopted primary: its
		 * snapshot holds WAL on it through a slot until its rotation,
		 * which takes a snapshot of its own.
		 */
		if (cl->cfg->bootstrap != BOOTSTRAP_ADOPT &&
		    store_newest(cl, id, sizeof(id)) == -1)
			take_snapshot(cl);
	} else {
		slog_error(cl->scope, "could not start cluster: %s", err);
		endpoint_release(cl->endpoint, NULL, 0);
		daemon_event(cl->daemon, cl->cfg->name, "-cluster-failed", NULL,
			     "%s", err);
	}
	pthread_mutex_lock(&cl->lock);
	cl->bootstrapped = rc == 0;
	cl->bootstrap_failed = rc != 0;
	cl->snapshot_running = false;
	pthread_mutex_unlock(&cl->lock);
	pthread_mutex_unlock(&cl->job_lock);
	return NULL;
}

static void *snapshot_main(void *arg)
{
	struct cluster *cl = arg;

	pthread_mutex_lock(&cl->job_lock);
	take_snapshot(cl);
	pthread_mutex_lock(&cl->lock);
	cl->snapshot_running = false;
	pthread_mutex_unlock(&cl->lock);
	pthread_mutex_unlock(&cl->job_lock);
	return NULL;
}

/*
 * Start a job thread, detached: jobs coordinate through the cluster's
 * locks and flags, and the daemon waits for them through those flags.
 */
static void spawn(void *(*fn)(void *), struct cluster *cl)
{
	pthread_attr_t attr;
	pthread_t thread;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, fn, cl) != 0)
		abort();
	pthread_attr_destroy(&attr);
}

int daemon_snapshot(struct cluster *cl, char *err, size_t errlen)
{
	pthread_mutex_lock(&cl->lock);
	if (cl->snapshot_running || !cl->bootstrapped || cl->daemon->stopping ||
	    cl->primary_down) {
		snprintf(err, errlen, "%s",
			 cl->snapshot_running	? "a snapshot is being taken"
			 : cl->daemon->stopping ? "the daemon is stopping"
			 : cl->primary_down	? "the primary is down"
						: "cluster is not ready");
		pthread_mutex_unlock(&cl->lock);
		return -1;
	}
	cl->snapshot_running = true;
	pthread_mutex_unlock(&cl->lock);
	spawn(snapshot_main, cl);
	return 0;
}

/*
 * A "snapshot verify" job: every file against both manifests, the
 * manifest against the audit log, then pg_verifybackup.  It takes no
 * job lock, so a rotation is not held up; a restore point pruned
 * meanwhile fails with the reason.
 */
static void *verify_main(void *arg)
{
	struct cluster *cl = arg;
	char id[64], err[ERRLEN] = "";
	json_t *fields;
	bool passed;

	pthread_mutex_lock(&cl->lock);
	snprintf(id, sizeof(id), "%s", cl->verify_id);
	pthread_mutex_unlock(&cl->lock);
	passed = store_verify(cl, cl->daemon->audit_path, id, err,
			      sizeof(err)) == 0;
	fields = json_pack("{s:s, s:b, s:s}", "snapshot", id, "passed", passed,
			   "reason", err);
	if (audit_append(cl->daemon->audit, "restore_point_checked",
			 cl->cfg->name, fields) == -1)
		slog_error(cl->scope, "could not record the check of %s", id);
	json_decref(fields);
	daemon_event(cl->daemon, cl->cfg->name,
		     passed ? "+restore-point-verified"
			    : "-restore-point-unverified",
		     id, "%s", err);
	pthread_mutex_lock(&cl->lock);
	cl->verify_passed = passed;
	snprintf(cl->verify_reason, sizeof(cl->verify_reason), "%s", err);
	cl->verify_running = false;
	pthread_mutex_unlock(&cl->lock);
	return NULL;
}

int daemon_verify(struct cluster *cl, const char *id, char *err, size_t errlen)
{
	pthread_mutex_lock(&cl->lock);
	if (cl->verify_running || cl->daemon->stopping) {
		snprintf(err, errlen, "%s",
			 cl->verify_running ? "a check is already running"
					    : "the daemon is stopping");
		pthread_mutex_unlock(&cl->lock);
		return -1;
	}
	snprintf(cl->verify_id, sizeof(cl->verify_id), "%s", id);
	cl->verify_running = true;
	cl->verify_reason[0] = '\0';
	pthread_mutex_unlock(&cl->lock);
	spawn(verify_main, cl);
	return 0;
}

/*
 * Whether CL has more or fewer replicas than configured, and nothing
 * runs that could change that.  An adopted primary gets its replicas
 * after its first rotation: its restore point's replication slot serves
 * one node only.
 */
static bool replicas_wanted(struct cluster *cl)
{
	struct node *primary;
	int n = 0;
	bool want;

	pthread_mutex_lock(&cl->lock);
	primary = cluster_primary(cl);
	for (int i = 0; i < cl->n_nodes; i++)
		n += cl->nodes[i].role == NODE_REPLICA;
	want = primary && !primary->adopted && !cl->running &&
	       n != cl->cfg->replicas;
	pthread_mutex_unlock(&cl->lock);
	return want;
}

/*
 * Whether replica R answers, follows PRIMARY and its link is up.  The
 * adapter's catch_up() bounds every question (a hung node fails it in a
 * few seconds); lag alone does not count against a replica.
 */
static bool replica_healthy(struct cluster *cl, struct node *r,
			    struct node *primary, char *err)
{
	struct catch_up cu = {0};

	if (cl->adapter->catch_up(cl, r, primary, &cu, err, ERRLEN) == -1)
		return false;
	if (!cu.streaming) {
		snprintf(err, ERRLEN, "not replicating: %s", cu.detail);
		return false;
	}
	return true;
}

/*
 * A replica that failed HEALTH_STRIKES checks in a row leaves the read
 * set at once, is recorded (replica_lost) and destroyed; the replica
 * count is then made good by a fresh one.
 */
static void drop_replica(struct cluster *cl, struct node *r, const char *why)
{
	char err[ERRLEN];
	json_t *fields;

	cluster_retire_replica(cl, r->generation);
	daemon_event(cl->daemon, cl->cfg->name, "-replica-lost", NULL,
		     "generation %d: %s", r->generation, why);
	fields = json_pack("{s:i, s:s}", "generation", r->generation, "reason",
			   why);
	if (audit_append(cl->daemon->audit, "replica_lost", cl->cfg->name,
			 fields) == -1)
		slog_error(cl->scope, "could not record the lost replica");
	json_decref(fields);
	if (cl->adapter->stop(cl, r, err, ERRLEN) == -1 ||
	    prov_destroy(cl, r, err, ERRLEN) == -1) {
		slog_error(cl->scope, "could not destroy replica %d: %s",
			   r->generation, err);
		return;
	}
	pthread_mutex_lock(&cl->lock);
	cluster_remove_node(cl, r->generation);
	if (cluster_save_state(cl) == -1)
		slog_error(cl->scope, "could not save members");
	pthread_mutex_unlock(&cl->lock);
}

/*
 * A primary whose server is not running (killed, crashed) is started
 * again where the engine loses nothing by that, as serve does at its
 * start; otherwise, and when it does not start, the cluster is marked
 * down once, with the fact in the audit log, until the primary runs again
 * or is replaced.  Never during a rotation, which stops the old primary
 * on purpose: the caller holds the job lock.  Returns whether the primary
 * runs now.
 */
static bool check_primary(struct cluster *cl, struct node *primary)
{
	char err[ERRLEN] = "";
	bool down;

	pthread_mutex_lock(&cl->lock);
	down = cl->primary_down;
	pthread_mutex_unlock(&cl->lock);
	if (cl->adapter->running(cl, primary)) {
		if (down) {
			record_primary(cl, primary, "primary_up", '+', "");
			set_primary_down(cl, primary, false);
		}
		return true;
	}
	endpoint_set_targets(cl->endpoint, NULL, 0);
	if (cl->adapter->restart_lost_primary) {
		if (start_node(cl, primary, err) == 0) {
			record_primary(cl, primary, "primary_restarted", '+',
				       "it was not running");
			set_primary_down(cl, primary, false);
			return true;
		}
	} else {
		snprintf(err, sizeof(err),
			 "not started again: it would come back with its last "
			 "save only, and its replicas would drop what came "
			 "after it");
	}
	if (!down) {
		record_primary(cl, primary, "primary_down", '-', err);
		set_primary_down(cl, primary, true);
	}
	return false;
}

/*
 * The health check of CL's members, a job like the others: it runs only
 * when it gets the job lock at once, so it never delays a rotation for
 * long.  The primary is started again if it is not running
 * (check_primary()); a replica seen unhealthy HEALTH_STRIKES times in a
 * row is dropped (drop_replica()).
 */
static void *health_main(void *arg)
{
	struct cluster *cl = arg;
	struct node replicas[MAX_REPLICAS + 1], primary = {0};
	int strikes[MAX_REPLICAS + 1];
	char err[ERRLEN];
	bool up;
	int n = 0;

	if (pthread_mutex_trylock(&cl->job_lock) != 0)
		goto out;
	pthread_mutex_lock(&cl->lock);
	if (cluster_primary(cl))
		node_copy(&primary, cluster_primary(cl));
	for (int i = 0; i < cl->n_nodes && n <= MAX_REPLICAS; i++)
		if (cl->nodes[i].role == NODE_REPLICA)
			node_copy(&replicas[n++], &cl->nodes[i]);
	pthread_mutex_unlock(&cl->lock);

	/* Replicas are not blamed for a primary that is down. */
	up = primary.generation && check_primary(cl, &primary);
	for (int i = 0; up && i < n; i++) {
		bool ok = replica_healthy(cl, &replicas[i], &primary, err);
		struct node *m;

		pthread_mutex_lock(&cl->lock);
		m = cluster_node(cl, replicas[i].generation);
		strikes[i] = m ? (m->strikes = ok ? 0 : m->strikes + 1) : 0;
		pthread_mutex_unlock(&cl->lock);
		if (ok)
			continue;
		slog_warning(cl->scope,
			     "replica %d failed a health check (%d "
			     "of %d): %s",
			     replicas[i].generation, strikes[i], HEALTH_STRIKES,
			     err);
		if (strikes[i] >= HEALTH_STRIKES)
			drop_replica(cl, &replicas[i], err);
	}
	for (int i = 0; i < n; i++)
		node_release(&replicas[i]);
	node_release(&primary);
	pthread_mutex_unlock(&cl->job_lock);
out:
	pthread_mutex_lock(&cl->lock);
	cl->health_running = false;
	pthread_mutex_unlock(&cl->lock);
	return NULL;
}

/* Start the health check of CL's members when one is due. */
static void check_health(struct cluster *cl, int64_t now)
{
	bool start;

	if (now < cl->next_health_check)
		return;
	cl->next_health_check = now + HEALTH_EVERY_MS;
	pthread_mutex_lock(&cl->lock);
	start = cl->n_nodes > 0 && !cl->health_running && !cl->running &&
		!cl->snapshot_running && !cl->verify_running;
	if (start)
		cl->health_running = true;
	pthread_mutex_unlock(&cl->lock);
	if (start)
		spawn(health_main, cl);
}

/* The schedules, once a second on the loop thread. */
static void tick_cluster(struct daemon *d, struct cluster *cl)
{
	int64_t now = now_ms();
	char err[ERRLEN];
	int status;

	if (!cl->bootstrapped || d->stopping)
		return;
	if (cl->cfg->schedule_every_ms > 0 && now >= cl->next_rotation_due) {
		cl->next_rotation_due = now + cl->cfg->schedule_every_ms;
		if (!rotation_start(cl, "schedule", "rotator", ROTATE_ALL,
				    &status, err, sizeof(err)))
			slog_info(cl->scope, "scheduled rotation skipped: %s",
				  err);
	}
	check_health(cl, now);
	if (now >= cl->next_replica_check && replicas_wanted(cl)) {
		/* A failure is tried again a while later, not every second. */
		cl->next_replica_check = now + REPLICA_RETRY_MS;
		if (!rotation_start(cl, "replicas", "rotator", ROTATE_REPLICAS,
				    &status, err, sizeof(err)))
			slog_debug(cl->scope, "replica change waits: %s", err);
	}
	if (cl->cfg->snapshot_every_ms > 0 && now >= cl->next_snapshot_due) {
		cl->next_snapshot_due = now + cl->cfg->snapshot_every_ms;
		if (daemon_snapshot(cl, err, sizeof(err)) == -1)
			slog_info(cl->scope, "scheduled snapshot skipped: %s",
				  err);
	}
}

static bool jobs_running(struct daemon *d)
{
	bool busy = false;

	for (int i = 0; i < d->n_clusters; i++) {
		struct cluster *cl = d->clusters[i];

		pthread_mutex_lock(&cl->lock);
		busy |= cl->running != NULL || cl->snapshot_running ||
			cl->verify_running || cl->health_running ||
			(!cl->bootstrapped && !cl->bootstrap_failed);
		pthread_mutex_unlock(&cl->lock);
	}
	return busy;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	for (int i = 0; i < d->n_clusters; i++)
		tick_cluster(d, d->clusters[i]);
	if (d->stopping && !jobs_running(d)) {
		log_info("every job has ended; stopping");
		event_base_loopbreak(d->base);
	}
}

/*
 * What remains of a period of EVERY ms begun at wall-clock LAST (0 for
 * never): schedules count from the last rotation or snapshot, not from
 * the daemon's start, so that restarts do not postpone them.
 */
static int64_t time_left(int64_t every, int64_t last)
{
	int64_t since = wall_ms() - last;

	if (last <= 0 || since < 0)
		return every;
	return since >= every ? 0 : every - since;
}

/* Arm the schedules of CL. */
static void arm_schedules(struct cluster *cl)
{
	int64_t now = now_ms();

	cl->next_rotation_due = now + time_left(cl->cfg->schedule_every_ms,
						cl->last_rotation_at);
	cl->next_snapshot_due = now + time_left(cl->cfg->snapshot_every_ms,
						cl->last_snapshot_at);
}

static bool differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/*
 * The first key of cluster A that B changes and that only a restart can
 * apply, or NULL.
 */
static const char *restart_key(const struct config_cluster *a,
			       const struct config_cluster *b)
{
	if (differs(a->engine, b->engine) || a->bootstrap != b->bootstrap)
		return "engine or bootstrap";
	if (differs(a->endpoint_host, b->endpoint_host) ||
	    a->endpoint_port != b->endpoint_port || a->hold_ms != b->hold_ms ||
	    differs(a->read_host, b->read_host) ||
	    a->read_port != b->read_port ||
	    differs(a->sentinel_host, b->sentinel_host) ||
	    a->sentinel_port != b->sentinel_port)
		return "endpoint";
	if (differs(a->auth_user, b->auth_user) ||
	    differs(a->auth_password_file, b->auth_password_file))
		return "auth";
	if (differs(a->bin_dir, b->bin_dir) || differs(a->run_as, b->run_as) ||
	    a->port_min != b->port_min || a->port_max != b->port_max)
		return "provisioner";
	return NULL;
}

/*
 * SIGHUP: read the file again.  The log level and each cluster's
 * schedule, snapshots, rotation, verify and server_settings take effect
 * at once.  A change that needs a restart (state_dir, api, and a
 * cluster's engine, endpoint, auth or provisioner) is refused with a
 * warning that names it, and that part keeps its running configuration;
 * so are clusters added or removed.
 */
static void reload(struct daemon *d)
{
	char err[CONFIG_ERR_LEN];
	struct config *cfg = config_load(d->cfg->path, err, sizeof(err));
	enum log_level level;

	if (!cfg) {
		log_error("could not reload the configuration: %s", err);
		return;
	}
	if (differs(cfg->state_dir, d->cfg->state_dir) ||
	    differs(cfg->api_host, d->cfg->api_host) ||
	    cfg->api_port != d->cfg->api_port ||
	    differs(cfg->api_token_file, d->cfg->api_token_file)) {
		log_warning(
			"not reloading \"%s\": state_dir and api change only at a restart",
			cfg->path);
		config_free(cfg);
		return;
	}
	if (cfg->log_level && log_parse_level(cfg->log_level, &level) == 0)
		log_set_level(level);
	for (int i = 0; i < d->n_clusters; i++) {
		struct cluster *cl = d->clusters[i];
		struct config_cluster *next =
			config_cluster(cfg, cl->cfg->name);
		const char *key = next ? restart_key(cl->cfg, next) : NULL;

		if (!next) {
			log_warning(
				"cluster \"%s\" left the configuration; it stays managed until a restart",
				cl->cfg->name);
			continue;
		}
		if (key) {
			log_warning(
				"cluster \"%s\": its %s changed, which needs a restart; keeping its running configuration",
				cl->cfg->name, key);
			continue;
		}
		pthread_mutex_lock(&cl->lock);
		cl->cfg = next;
		arm_schedules(cl);
		cl->next_replica_check = 0; /* a new count applies at once */
		pthread_mutex_unlock(&cl->lock);
	}
	if (cfg->n_clusters != d->n_clusters)
		log_warning(
			"clusters added to the configuration start at the next restart");
	d->old_cfgs = realloc(d->old_cfgs,
			      sizeof(*d->old_cfgs) * (d->n_old_cfgs + 1));
	if (!d->old_cfgs)
		abort();
	d->old_cfgs[d->n_old_cfgs++] = d->cfg;
	d->cfg = cfg;
	log_info("configuration reloaded from \"%s\"", cfg->path);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	if (d->stopping) {
		log_warning("second signal: stopping at once");
		event_base_loopbreak(d->base);
		return;
	}
	log_info(
		"stopping: waiting for running jobs; signal again to stop at once");
	d->stopping = true;
	on_tick(-1, 0, d);
}

/* Put the file and the key of cluster INDEX before the message in ERR. */
static void keyed_error(struct daemon *d, int index, const char *key, char *err,
			size_t errlen)
{
	char why[ERRLEN];

	snprintf(why, sizeof(why), "%s", err);
	snprintf(err, errlen, "%s: clusters[%d].%s: %.400s", d->cfg->path,
		 index, key, why);
}

/*
 * Read the secrets of cluster INDEX: its password, returned, and the
 * adopted server's password, only checked.  NULL with ERR naming the file
 * and the key when either cannot be read or is not private.
 */
static char *cluster_secret(struct daemon *d, struct config_cluster *cfg,
			    int index, char *err, size_t errlen)
{
	char why[ERRLEN], *password, *secret;

	password = read_secret_file(cfg->auth_password_file, why, sizeof(why));
	if (!password) {
		snprintf(err, errlen, "%s: clusters[%d].auth.password_file: %s",
			 d->cfg->path, index, why);
		return NULL;
	}
	if (!cfg->adopt_password_file)
		return password;
	secret = read_secret_file(cfg->adopt_password_file, why, sizeof(why));
	if (!secret) {
		snprintf(err, errlen,
			 "%s: clusters[%d].connection.password_file: %s",
			 d->cfg->path, index, why);
		explicit_bzero(password, strlen(password));
		free(password);
		return NULL;
	}
	explicit_bzero(secret, strlen(secret));
	free(secret);
	return password;
}

/*
 * Check every cluster's secrets before anything is written, so that a
 * configuration that names an unreadable or public file leaves no trace.
 */
static int check_secrets(struct daemon *d, char *err, size_t errlen)
{
	for (int i = 0; i < d->cfg->n_clusters; i++) {
		char *password =
			cluster_secret(d, &d->cfg->clusters[i], i, err, errlen);

		if (!password)
			return -1;
		explicit_bzero(password, strlen(password));
		free(password);
	}
	return 0;
}

/* Open the cluster of CFG: its directory, secret, state and endpoint. */
static struct cluster *cluster_open(struct daemon *d,
				    struct config_cluster *cfg, int index,
				    char *err, size_t errlen)
{
	struct cluster *cl = xcalloc(1, sizeof(*cl));

	cl->cfg = cfg;
	cl->daemon = d;
	snprintf(cl->scope, sizeof(cl->scope), "%s", cfg->name);
	pthread_mutex_init(&cl->lock, NULL);
	pthread_mutex_init(&cl->job_lock, NULL);
	cl->adapter = adapter_find(cfg->engine);
	cl->dir = xasprintf("%s/clusters/%s", d->cfg->state_dir, cfg->name);
	cl->password = cluster_secret(d, cfg, index, err, errlen);
	if (!cl->password)
		return cl;
	if (!cl->adapter) {
		snprintf(
			err, errlen,
			"%s: clusters[%d].engine: engine \"%s\" is not built in",
			d->cfg->path, index, cfg->engine);
		return cl;
	}
	if (mkdir_p(cl->dir, 0711) == -1 || chmod(cl->dir, 0711) == -1) {
		snprintf(err, errlen, "could not create \"%s\": %s", cl->dir,
			 strerror(errno));
		return cl;
	}
	if (cluster_load_state(cl, err, errlen) == -1)
		return cl;
	if (cl->next_generation < 1)
		cl->next_generation = 1;
	if (cl->next_snapshot < 1)
		cl->next_snapshot = 1;
	if (cl->next_rotation < 1)
		cl->next_rotation = 1;
	cl->endpoint =
		endpoint_new(d->base, cfg->name, cfg->endpoint_host,
			     cfg->endpoint_port, cfg->hold_ms, err, errlen);
	if (!cl->endpoint) {
		keyed_error(d, index, "endpoint.listen", err, errlen);
		return cl;
	}
	if (cfg->read_host) {
		char name[64];

		snprintf(name, sizeof(name), "%s/read", cfg->name);
		cl->reader =
			endpoint_new(d->base, name, cfg->read_host,
				     cfg->read_port, cfg->hold_ms, err, errlen);
		if (!cl->reader) {
			keyed_error(d, index, "endpoint.read_listen", err,
				    errlen);
			return cl;
		}
	}
	if (cfg->sentinel_host) {
		cl->sentinel =
			sentinel_new(d->base, cfg->name, cfg->sentinel_host,
				     cfg->sentinel_port, err, errlen);
		if (!cl->sentinel) {
			keyed_error(d, index, "endpoint.sentinel_listen", err,
				    errlen);
			return cl;
		}
	}
	err[0] = '\0';
	return cl;
}

static void cluster_close(struct cluster *cl)
{
	if (!cl)
		return;
	endpoint_free(cl->endpoint);
	endpoint_free(cl->reader);
	sentinel_free(cl->sentinel);
	for (int i = 0; i < cl->n_history; i++) {
		rotation_reap(cl->history[i]);
		rotation_free(cl->history[i]);
	}
	for (int i = 0; i < cl->n_nodes; i++)
		node_release(&cl->nodes[i]);
	free(cl->nodes);
	if (cl->password)
		explicit_bzero(cl->password, strlen(cl->password));
	free(cl->password);
	free(cl->snapshot_error);
	json_decref(cl->last_rotation);
	free(cl->dir);
	free(cl);
}

/*
 * Replay the journal and settle every rotation it shows in flight, then
 * start the journal afresh.  Returns 0 or -1 after logging.
 */
static int recover(struct daemon *d)
{
	char err[ERRLEN];
	json_t *active = journal_replay(d->journal_path, err, sizeof(err));
	json_t *empty = json_object();
	const char *id;
	json_t *rec;
	int rc = 0;

	if (!active) {
		log_error("%s", err);
		json_decref(empty);
		return -1;
	}
	json_object_foreach (active, id, rec) {
		const char *state =
			json_string_value(json_object_get(rec, "state"));
		const char *name =
			json_string_value(json_object_get(rec, "cluster"));
		struct cluster *cl = name ? daemon_cluster(d, name) : NULL;

		if (state && (strcmp(state, "done") == 0 ||
			      strcmp(state, "aborted") == 0))
			continue;
		if (!cl) {
			log_error(
				"journal names rotation \"%s\" of unknown cluster \"%s\"",
				id, name ? name : "?");
			rc = -1;
			continue;
		}
		if (rotation_recover(cl, rec) == -1)
			rc = -1;
	}
	journal_close(d->journal);
	d->journal = NULL;
	if (rc == 0 && journal_compact(d->journal_path, empty) == -1) {
		log_error("could not compact the journal \"%s\": %s",
			  d->journal_path, strerror(errno));
		rc = -1;
	}
	json_decref(empty);
	json_decref(active);
	return rc;
}

static int open_logs(struct daemon *d, char *err, size_t errlen)
{
	d->audit_path = xasprintf("%s/audit.log", d->cfg->state_dir);
	d->journal_path = xasprintf("%s/journal.log", d->cfg->state_dir);
	d->audit = audit_open(d->audit_path, err, errlen);
	return d->audit ? 0 : -1;
}

/*
 * One daemon per state directory: two would allocate the same
 * generations and extend the audit chain from two heads.  The lock is
 * held, through the open descriptor, until the process ends.
 */
static int lock_state_dir(struct daemon *d, char *err, size_t errlen)
{
	char *path = xasprintf("%s/rotator.lock", d->cfg->state_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			snprintf(err, errlen,
				 "another rotator serve uses state_dir \"%s\"",
				 d->cfg->state_dir);
		else
			snprintf(err, errlen,
				 "could not lock state_dir \"%s\": %s",
				 d->cfg->state_dir, strerror(errno));
		if (fd != -1)
			close(fd);
		free(path);
		return -1;
	}
	d->lock_fd = fd;
	free(path);
	return 0;
}

static int prepare_state_dir(struct daemon *d, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir_p(d->cfg->state_dir, 0711) == -1 ||
	    stat(d->cfg->state_dir, &st) == -1) {
		snprintf(err, errlen, "could not create state_dir \"%s\": %s",
			 d->cfg->state_dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state_dir \"%s\" is not a directory",
			 d->cfg->state_dir);
		return -1;
	}
	if (st.st_mode & 0022) {
		snprintf(
			err, errlen,
			"state_dir \"%s\" has mode %04o: it must not be writable by group or others",
			d->cfg->state_dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if (!(st.st_mode & S_IXOTH)) {
		snprintf(
			err, errlen,
			"state_dir \"%s\" has mode %04o: nodes running as another user need it searchable (0711)",
			d->cfg->state_dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return lock_state_dir(d, err, errlen);
}

/*
 * Everything up to the loop.  Returns 0, 2 for bad configuration (a
 * message already printed), or 1 for any other failure.
 */
static int daemon_open(struct daemon *d, const char *path)
{
	char err[ERRLEN] = "", serr[ERRLEN];

	d->cfg = config_load(path, err, sizeof(err));
	if (!d->cfg) {
		fprintf(stderr, "rotator: %s\n", err);
		return 2;
	}
	if (d->cfg->log_level) {
		enum log_level level;

		if (log_parse_level(d->cfg->log_level, &level) == 0)
			log_set_level(level);
	}
	d->token = read_secret_file(d->cfg->api_token_file, serr, sizeof(serr));
	if (!d->token) {
		fprintf(stderr, "rotator: %s: api.token_file: %s\n", path,
			serr);
		return 2;
	}
	if (check_secrets(d, err, sizeof(err)) == -1) {
		fprintf(stderr, "rotator: %s\n", err);
		return 2;
	}
	if (prepare_state_dir(d, err, sizeof(err)) == -1 ||
	    open_logs(d, err, sizeof(err)) == -1) {
		fprintf(stderr, "rotator: %s\n", err);
		return 1;
	}
	d->clusters = xcalloc((size_t)d->cfg->n_clusters, sizeof(*d->clusters));
	for (int i = 0; i < d->cfg->n_clusters; i++) {
		d->clusters[i] = cluster_open(d, &d->cfg->clusters[i], i, err,
					      sizeof(err));
		d->n_clusters++;
		if (err[0]) {
			fprintf(stderr, "rotator: %s\n", err);
			return strstr(err, d->cfg->path) ? 2 : 1;
		}
	}
	/* Recovery writes its own records, so the journal opens twice. */
	d->journal = journal_open(d->journal_path, err, sizeof(err));
	if (!d->journal || recover(d) == -1) {
		fprintf(stderr, "rotator: %s\n",
			err[0] ? err : "recovery failed");
		return 1;
	}
	d->journal = journal_open(d->journal_path, err, sizeof(err));
	if (!d->journal) {
		fprintf(stderr, "rotator: %s\n", err);
		return 1;
	}
	return 0;
}

static void daemon_close(struct daemon *d)
{
	for (int i = 0; i < d->n_clusters; i++)
		cluster_close(d->clusters[i]);
	free(d->clusters);
	journal_close(d->journal);
	audit_close(d->audit);
	for (int i = 0; i < DAEMON_EVENTS; i++)
		json_decref(d->events[i]);
	for (int i = 0; i < d->n_old_cfgs; i++)
		config_free(d->old_cfgs[i]);
	free(d->old_cfgs);
	config_free(d->cfg);
	if (d->token)
		explicit_bzero(d->token, strlen(d->token));
	free(d->token);
	free(d->audit_path);
	free(d->journal_path);
	if (d->lock_fd != -1)
		close(d->lock_fd);
	if (d->base)
		event_base_free(d->base);
	pthread_mutex_destroy(&d->events_lock);
}

int daemon_serve(const char *config_path)
{
	static const int signals[] = {SIGTERM, SIGINT, SIGHUP};
	struct event *sig_events[3] = {NULL}, *tick = NULL;
	struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
	struct daemon d = {.lock_fd = -1};
	struct api *api = NULL;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	/*
	 * Job threads come and go, many at once at start-up (one per
	 * cluster): two malloc arenas keep what they leave behind from
	 * growing with the number of clusters.
	 */
	mallopt(M_ARENA_MAX, 2);
	pthread_mutex_init(&d.events_lock, NULL);
	evthread_use_pthreads();
	d.base = event_base_new();
	the_daemon = &d;
	rc = daemon_open(&d, config_path);
	if (rc != 0)
		goto out;
	api = api_new(&d, d.cfg->api_host, d.cfg->api_port);
	if (!api) {
		rc = 2;
		goto out;
	}
	for (int i = 0; i < d.n_clusters; i++) {
		/*
		 * Until the start-up job finds the primary, clients wait; the
		 * hold starts here, after recovery, so that hold_ms counts
		 * from when the loop runs.
		 */
		endpoint_hold(d.clusters[i]->endpoint);
		if (d.clusters[i]->reader)
			endpoint_hold(d.clusters[i]->reader);
		arm_schedules(d.clusters[i]);
		spawn(startup_main, d.clusters[i]);
	}
	for (int i = 0; i < 3; i++) {
		sig_events[i] = evsignal_new(d.base, signals[i], on_signal, &d);
		event_add(sig_events[i], NULL);
	}
	tick = event_new(d.base, -1, EV_PERSIST, on_tick, &d);
	event_add(tick, &tv);
	log_info("rotator %s serving %d cluster%s, API on %s:%d",
		 ROTATOR_VERSION, d.n_clusters, d.n_clusters == 1 ? "" : "s",
		 d.cfg->api_host, d.cfg->api_port);
	event_base_dispatch(d.base);
	rc = jobs_running(&d) ? 1 : 0;
	if (rc)
		log_warning(
			"stopped with jobs in flight; the journal resumes them at the next start");
out:
	for (int i = 0; i < 3; i++)
		if (sig_events[i])
			event_free(sig_events[i]);
	if (tick)
		event_free(tick);
	api_free(api);
	if (rc == 1 && jobs_running(&d))
		_exit(1); /* threads still use what daemon_close frees */
	daemon_close(&d);
	the_daemon = NULL;
	return rc;
}
