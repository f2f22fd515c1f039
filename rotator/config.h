/*
 * config.h: the JSON configuration file.
 *
 * config_load() reads and checks the whole file before anything acts on it:
 * invalid JSON is reported with file, line and column; an unknown key, a
 * wrong type, a bad duration or port range, or a missing required key with
 * the file and the key's full path ("clusters[0].schedule.every").
 */
#ifndef ROTATOR_CONFIG_H
#define ROTATOR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "rotator/util.h"

#define CONFIG_ERR_LEN 512
#define MAX_REPLICAS 8 /* replicas a cluster may keep */

enum bootstrap {
	BOOTSTRAP_INITDB, /* postgres: make generation 1 with initdb */
	BOOTSTRAP_EMPTY,  /* redis: start generation 1 empty */
	BOOTSTRAP_ADOPT,  /* take over an existing primary */
};

struct config_setting {
	char *name;
	char *value;
};

struct config_cluster {
	char *name;		   /* required; [A-Za-z0-9_]{1,32} */
	char *engine;		   /* required; "postgres" or "redis" */
	enum bootstrap bootstrap;  /* required */
	char *adopt_host;	   /* connection.host, with bootstrap "adopt" */
	int adopt_port;		   /* connection.port */
	char *adopt_user;	   /* connection.user, redis only, optional */
	char *adopt_password_file; /* connection.password_file, optional */
	int replicas;		   /* replicas beside the primary, default 0 */

	char *auth_user;	  /* auth.user, required */
	char *auth_password_file; /* auth.password_file, required */

	char *endpoint_host; /* endpoint.listen, required */
	int endpoint_port;
	int64_t hold_ms; /* endpoint.hold_ms, default 5000 */
	char *read_host; /* endpoint.read_listen, optional (NULL) */
	int read_port;
	char *sentinel_host; /* endpoint.sentinel_listen, redis, optional */
	int sentinel_port;

	char *prov_kind; /* provisioner.kind, default "local" */
	char *bin_dir;	 /* provisioner.bin_dir, required */
	int port_min;	 /* provisioner.ports "A-B", required */
	int port_max;
	char *run_as; /* provisioner.run_as, optional */

	int64_t schedule_every_ms; /* schedule.every, 0 = none */
	int64_t snapshot_every_ms; /* snapshots.every, 0 = none */
	int snapshot_keep;	   /* snapshots.keep, default 3 */

	int64_t max_lag_bytes;	     /* rotation.max_lag_bytes, 16 MiB */
	int64_t catch_up_timeout_ms; /* rotation.catch_up_timeout, 30m */
	int64_t switch_timeout_ms;   /* rotation.switch_timeout, 10s */

	char **canary; /* verify.canary: queries, NULL-terminated */
	int n_canary;

	struct config_setting *settings; /* server_settings: name -> value */
	int n_settings;
};

struct config {
	char *path;	 /* the file it was read from */
	char *state_dir; /* required */
	char *api_host;	 /* api.listen, default 127.0.0.1:7070 */
	int api_port;
	char *api_token_file; /* api.token_file, required */
	char *log_level;      /* "error" .. "debug", default "info" */

	struct config_cluster *clusters;
	int n_clusters;
};

/*
 * Read and check PATH.  Returns a new config (caller frees with
 * config_free()), or NULL after writing one message into ERR that names
 * the file and either the line and column or the key path.
 */
struct config *config_load(const char *path, char *err, size_t errlen);

void config_free(struct config *cfg);

/* The cluster called NAME, or NULL.  Borrowed from CFG. */
struct config_cluster *config_cluster(struct config *cfg, const char *name);

#endif
