/*
 * provisioner.c: the local provisioner.
 *
 * Nodes are processes on this host.  Programs run as the configured
 * unprivileged user (PostgreSQL refuses to run as root), from bin_dir,
 * with a clean environment so that nothing of the daemon's, and no
 * secret, leaks into them.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "rotator/cluster.h"
#include "rotator/log.h"
#include "rotator/provisioner.h"

#define MAX_GROUPS 64
#define MAX_ENV 32
#define MAX_ARGS 64

int prov_owner(struct cluster *cl, uid_t *uid, gid_t *gid, char *err,
	       size_t errlen)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc;

	if (!cl->cfg->run_as) {
		*uid = geteuid();
		*gid = getegid();
		return 0;
	}
	rc = getpwnam_r(cl->cfg->run_as, &pw, buf, sizeof(buf), &found);
	if (rc != 0 || !found) {
		snprintf(err, errlen, "could not find user \"%s\": %s",
			 cl->cfg->run_as, rc ? strerror(rc) : "no such user");
		return -1;
	}
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return 0;
}

/* True when nothing listens on 127.0.0.1:PORT and it can be bound. */
static bool port_is_free(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int fd, rc, one = 1;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return false;
	/*
	 * As the servers themselves bind: connections of a node just
	 * destroyed that linger in TIME_WAIT do not keep its port from a
	 * later node, only a listener does.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
		close(fd);
		return false;
	}
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc == 0;
}

static bool port_is_member(struct cluster *cl, int port)
{
	bool used = false;

	pthread_mutex_lock(&cl->lock);
	for (int i = 0; i < cl->n_nodes; i++)
		if (cl->nodes[i].port == port)
			used = true;
	pthread_mutex_unlock(&cl->lock);
	return used;
}

static int pick_port(struct cluster *cl, int generation)
{
	int span = cl->cfg->port_max - cl->cfg->port_min + 1;

	/*
	 * Start from a place that moves with the generation, so that a
	 * fresh node does not take the port its predecessor just gave up
	 * (clients and replicas may still try that one).
	 */
	for (int i = 0; i < span; i++) {
		int port = cl->cfg->port_min + (generation + i) % span;

		if (!port_is_member(cl, port) && port_is_free(port))
			return port;
	}
	return -1;
}

int prov_mkdir(struct cluster *cl, const char *path, mode_t mode, char *err,
	       size_t errlen)
{
	uid_t uid;
	gid_t gid;

	if (prov_owner(cl, &uid, &gid, err, errlen) == -1)
		return -1;
	if (mkdir(path, mode) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "could not create directory \"%s\": %s",
			 path, strerror(errno));
		return -1;
	}
	if (chown(path, uid, gid) == -1 || chmod(path, mode) == -1) {
		snprintf(err, errlen, "could not set owner of \"%s\": %s", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int prov_write_file(struct cluster *cl, const char *path, const char *buf,
		    size_t len, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;

	if (prov_owner(cl, &uid, &gid, err, errlen) == -1)
		return -1;
	if (write_file_durable(path, buf, len, 0600) == -1 ||
	    chown(path, uid, gid) == -1) {
		snprintf(err, errlen, "could not write \"%s\": %s", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int prov_create(struct cluster *cl, struct node *n, char *err, size_t errlen)
{
	char *nodes_dir = xasprintf("%s/nodes", cl->dir);
	int rc;

	n->port = pick_port(cl, n->generation);
	if (n->port == -1) {
		snprintf(err, errlen, "no free port in %d-%d",
			 cl->cfg->port_min, cl->cfg->port_max);
		free(nodes_dir);
		return -1;
	}
	snprintf(n->host, sizeof(n->host), "127.0.0.1");
	free(n->dir);
	n->dir = xasprintf("%s/%d", nodes_dir, n->generation);
	if (mkdir_p(nodes_dir, 0711) == -1) {
		snprintf(err, errlen, "could not create directory \"%s\": %s",
			 nodes_dir, strerror(errno));
		free(nodes_dir);
		return -1;
	}
	free(nodes_dir);

	/* A directory left by a crashed attempt at this generation goes. */
	if (remove_tree(n->dir) == -1) {
		snprintf(err, errlen, "could not remove \"%s\": %s", n->dir,
			 strerror(errno));
		return -1;
	}
	rc = prov_mkdir(cl, n->dir, 0700, err, errlen);
	return rc;
}

int prov_destroy(struct cluster *cl, struct node *n, char *err, size_t errlen)
{
	if (!n->dir)
		return 0;
	if (remove_tree(n->dir) == -1) {
		snprintf(err, errlen, "could not remove \"%s\": %s", n->dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Everything the child needs, prepared before fork(): after fork() in a
 * threaded program the child may only make async-signal-safe calls.
 */
struct child_plan {
	char *path;
	char *argv[MAX_ARGS];
	char *envp[MAX_ENV];
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_GROUPS];
	int n_groups;
	bool switch_user;
	pid_t parent;
	int out_fd;
	int err_fd;
};

static int plan_child(struct cluster *cl, struct child_plan *plan,
		      const char *program, const char *const *argv,
		      const char *const *env, char *err, size_t errlen)
{
	int argc = 0, envc = 0;

	memset(plan, 0, sizeof(*plan));
	plan->out_fd = plan->err_fd = -1;
	if (program[0] == '/')
		plan->path = xstrdup(program);
	else
		plan->path = xasprintf("%s/%s", cl->cfg->bin_dir, program);
	plan->argv[argc++] = plan->path;
	for (; argv && argv[argc - 1] && argc < MAX_ARGS - 1; argc++)
		plan->argv[argc] = (char *)argv[argc - 1];
	plan->argv[argc] = NULL;

	plan->envp[envc++] = "PATH=/usr/bin:/bin";
	plan->envp[envc++] = "LC_ALL=C";
	plan->envp[envc++] = "TZ=UTC";
	for (; env && env[envc - 3] && envc < MAX_ENV - 1; envc++)
		plan->envp[envc] = (char *)env[envc - 3];
	plan->envp[envc] = NULL;

	if (prov_owner(cl, &plan->uid, &plan->gid, err, errlen) == -1)
		return -1;
	plan->switch_user = geteuid() == 0 && plan->uid != 0;
	plan->parent = getpid();
	if (plan->switch_user) {
		plan->n_groups = MAX_GROUPS;
		if (getgrouplist(cl->cfg->run_as, plan->gid, plan->groups,
				 &plan->n_groups) == -1)
			plan->n_groups = 0;
	}
	return 0;
}

static void exec_child(struct child_plan *plan, int err_pipe)
{
	int null_fd = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	if (null_fd != -1)
		dup2(null_fd, 0);
	dup2(plan->out_fd != -1 ? plan->out_fd : err_pipe, 1);
	dup2(err_pipe, 2);
	if (plan->switch_user &&
	    (setgroups((size_t)plan->n_groups, plan->groups) == -1 ||
	     setgid(plan->gid) == -1 || setuid(plan->uid) == -1)) {
		static const char msg[] = "could not switch user\n";

		if (write(2, msg, sizeof(msg) - 1) < 0)
			_exit(126);
		_exit(126);
	}
	if (chdir("/") == -1)
		_exit(126);

	/*
	 * A tool must not outlive a daemon that was killed: it would go on
	 * writing where the next daemon cleans up.  Set after the change of
	 * user, which clears it; servers outlive pg_ctl, their parent.
	 */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != plan->parent)
		_exit(126);

	/*
	 * Nothing of the daemon's may outlive it in a server it starts:
	 * an inherited listening socket would keep the endpoint's port.
	 */
	close_range(3, ~0U, 0);
	execve(plan->path, plan->argv, plan->envp);
	_exit(127);
}

/* Keep the last line of what the child wrote to standard error. */
static void drain_stderr(int fd, char *tail, size_t cap, size_t *used)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (*used + 1 >= cap) {
				memmove(tail, tail + cap / 2, cap / 2);
				*used -= cap / 2;
			}
			tail[(*used)++] = buf[i];
		}
	}
	tail[*used] = '\0';
}

static const char *last_line(char *text)
{
	size_t len = strlen(text);
	char *nl;

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	nl = strrchr(text, '\n');
	return nl ? nl + 1 : text;
}

static int wait_child(pid_t pid, int err_fd, int64_t timeout_ms, char *tail,
		      size_t cap, int *status)
{
	int64_t deadline = now_ms() + timeout_ms;
	size_t used = 0;

	tail[0] = '\0';
	for (;;) {
		struct pollfd pfd = {.fd = err_fd, .events = POLLIN};
		pid_t done;

		if (poll(&pfd, 1, 5) > 0)
			drain_stderr(err_fd, tail, cap, &used);
		done = waitpid(pid, status, WNOHANG);
		if (done == pid) {
			drain_stderr(err_fd, tail, cap, &used);
			return 0;
		}
		if (done == -1 && errno != EINTR)
			return -1;
		if (now_ms() > deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, status, 0);
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

int prov_run(struct cluster *cl, const char *program, const char *const *argv,
	     const char *const *env, const char *out_path, int64_t timeout_ms,
	     char *err, size_t errlen)
{
	struct child_plan plan;
	char tail[2048];
	int pipefd[2] = {-1, -1};
	int status = 0, rc = -1;
	pid_t pid;

	if (plan_child(cl, &plan, program, argv, env, err, errlen) == -1)
		goto out;
	if (access(plan.path, X_OK) == -1) {
		snprintf(err, errlen, "could not execute \"%s\": %s", plan.path,
			 strerror(errno));
		goto out;
	}
	if (out_path) {
		plan.out_fd =
			open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			     0600);
		if (plan.out_fd == -1) {
			snprintf(err, errlen, "could not open \"%s\": %s",
				 out_path, strerror(errno));
			goto out;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "could not create pipe: %s",
			 strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid == -1) {
		snprintf(err, errlen, "could not fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		exec_child(&plan, pipefd[1]);
	close(pipefd[1]);
	pipefd[1] = -1;

	if (wait_child(pid, pipefd[0], timeout_ms, tail, sizeof(tail),
		       &status) == -1) {
		snprintf(err, errlen, "%s %s: %s", program,
			 errno == ETIMEDOUT ? "timed out" : "could not wait",
			 strerror(errno));
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = 0;
		goto out;
	}
	if (WIFEXITED(status))
		snprintf(err, errlen, "%s exited with status %d: %s", program,
			 WEXITSTATUS(status), last_line(tail));
	else
		snprintf(err, errlen, "%s was killed by signal %d", program,
			 WTERMSIG(status));
out:
	if (pipefd[0] != -1)
		close(pipefd[0]);
	if (pipefd[1] != -1)
		close(pipefd[1]);
	if (plan.out_fd != -1)
		close(plan.out_fd);
	free(plan.path);
	return rc;
}

pid_t prov_read_pid(const char *path)
{
	FILE *f = fopen(path, "re");
	long pid = 0;

	if (!f)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

bool prov_pid_alive(pid_t pid)
{
	char path[64], buf[256], *close_paren;
	FILE *f;
	size_t n;

	if (pid <= 0 || (kill(pid, 0) == -1 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno != ENOENT;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	close_paren = strrchr(buf, ')');
	return !(close_paren && close_paren[1] == ' ' &&
		 (close_paren[2] == 'Z' || close_paren[2] == 'X'));
}

bool prov_wait_gone(pid_t pid, int64_t deadline)
{
	while (prov_pid_alive(pid)) {
		if (now_ms() > deadline)
			return false;
		sleep_ms(1);
	}
	return true;
}
