/*
 * log.h - logging in the OpenBSD daemon style (STYLE.md habit 9): stderr in
 * the foreground, syslog otherwise; log_warn appends strerror(errno).
 */
#ifndef IWFD_LOG_H
#define IWFD_LOG_H

#include <stdarg.h>

#define LOG_ATTR_PRINTF(f, a)	__attribute__((format(printf, f, a)))

/* foreground: log to stderr; verbose: 0 info, 1+ debug. */
void	log_init(int foreground, int verbose, const char *ident);
void	log_setverbose(int);
int	log_getverbose(void);
void	log_warn(const char *, ...) LOG_ATTR_PRINTF(1, 2);
void	log_warnx(const char *, ...) LOG_ATTR_PRINTF(1, 2);
void	log_info(const char *, ...) LOG_ATTR_PRINTF(1, 2);
void	log_debug(const char *, ...) LOG_ATTR_PRINTF(1, 2);
void	fatal(const char *, ...) LOG_ATTR_PRINTF(1, 2)
	    __attribute__((noreturn));
void	fatalx(const char *, ...) LOG_ATTR_PRINTF(1, 2)
	    __attribute__((noreturn));
/* Route libevent's own messages into this log. */
void	log_route_libevent(void);

#endif
