/*
 * priv.h - least privilege (docs/security.md): the state directory made
 * ready for the unprivileged user while still root, then the drop to that
 * user with only CAP_NET_ADMIN, PR_SET_NO_NEW_PRIVS and the seccomp filter.
 */
#ifndef IWFD_PRIV_H
#define IWFD_PRIV_H

#include <sys/stat.h>
#include <sys/types.h>

#include <stdbool.h>

#include "config.h"

struct priv_user {
	char	name[CONFIG_USER_MAX + 1];
	uid_t	uid;
	gid_t	gid;	/* the primary group: supplementary ones are dropped */
};

/* The configured user; -1 with a log line saying how to create it. */
int	priv_user_lookup(const char *name, struct priv_user *);

/* What start-up does with the state file's directory (pure, tested). */
enum priv_dir_action {
	PRIV_DIR_OK,		/* the user may create and rename in it */
	PRIV_DIR_CHOWN,		/* the daemon made it just now: give it over */
	PRIV_DIR_DENIED,	/* the user cannot write it: a fatal error */
};

/*
 * st: the directory; made: the daemon created it in this start (mode
 * 0700, root's). Only such a directory is ever given to the user: one it
 * did not make (/var/lib, /tmp, an admin's) is never chowned, only used
 * if the user can write it already (as owner, through its primary group,
 * or as anyone).
 */
enum priv_dir_action priv_dir_decide(const struct stat *st, bool made,
	    const struct priv_user *);

/* ... and with an existing state file or journal in it (pure, tested). */
enum priv_file_action {
	PRIV_FILE_OK,		/* the user's already */
	PRIV_FILE_CHOWN,	/* root's (this start's first write, or a run
				   as root before): give it over */
	PRIV_FILE_DENIED,	/* someone else's, a link, not a file */
};

/* st: lstat-like (the file opened with O_NOFOLLOW, then fstat). */
enum priv_file_action priv_file_decide(const struct stat *st,
	    const struct priv_user *);

/*
 * At start, as root: make the state file's directory (mode 0700) and
 * remember which directory that is (device and inode), so that
 * priv_state_prepare() gives that one, and no other put in its place, to
 * the user. 0 made; -1 with errno (EEXIST: it was there; nothing logged
 * but a directory swapped in right after the mkdir).
 */
int	priv_state_mkdir(const char *dir);

/*
 * At start, as root, after the first state write (it may have created the
 * file and the journal): make the state file's directory (dir_made: the
 * daemon created it with priv_state_mkdir: it must still be that
 * directory, opened without following a link), the file and its journal
 * writable by the user.
 * 0, or -1 with a log line naming the path and the fix.
 */
int	priv_state_prepare(const char *user, const char *state_file,
	    bool dir_made);

/*
 * Drop everything: become the user (root stays root), keep only
 * CAP_NET_ADMIN when net_admin (nat = local: effective, permitted,
 * bounding set; never inheritable or ambient) and no capability at all
 * otherwise, PR_SET_NO_NEW_PRIVS, and with sandbox the seccomp filter.
 * Must run while the process has one thread: capabilities are per thread.
 * 0, or -1 (logged): the daemon must not go on.
 */
int	priv_drop(const char *user, bool sandbox, bool net_admin);

#endif
