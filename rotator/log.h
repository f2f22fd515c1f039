/*
 * log.h: one logging family for the whole program.
 *
 * Messages go to stderr as "TIME LEVEL message".  The macros test the level
 * before they evaluate their arguments, so a debug line costs nothing when
 * debug is off.  log_* functions are safe to call from any thread.
 */
#ifndef ROTATOR_LOG_H
#define ROTATOR_LOG_H

enum log_level {
	LOG_ERROR,
	LOG_WARNING,
	LOG_INFO,
	LOG_DEBUG,
};

extern enum log_level log_threshold;

void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *level);

void log_write(enum log_level level, const char *scope, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_at(level, scope, ...)                                              \
	do {                                                                   \
		if ((level) <= log_threshold)                                  \
			log_write((level), (scope), __VA_ARGS__);              \
	} while (0)

#define log_error(...) log_at(LOG_ERROR, NULL, __VA_ARGS__)
#define log_warning(...) log_at(LOG_WARNING, NULL, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, NULL, __VA_ARGS__)

/*
 * Scoped variants: SCOPE is "cluster/generation host:port" or any short
 * label that says which node or cluster the line is about.
 */
#define slog_error(scope, ...) log_at(LOG_ERROR, scope, __VA_ARGS__)
#define slog_warning(scope, ...) log_at(LOG_WARNING, scope, __VA_ARGS__)
#define slog_info(scope, ...) log_at(LOG_INFO, scope, __VA_ARGS__)
#define slog_debug(scope, ...) log_at(LOG_DEBUG, scope, __VA_ARGS__)

#endif
