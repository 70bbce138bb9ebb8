/*
 * priv.c - least privilege (docs/security.md).
 *
 * Start-up runs as root: it opens the control socket, the state file, the
 * nftables handle, the upstream and front-end sockets. Before pupnp starts
 * its threads (capabilities and uids are per thread in the kernel; the
 * threads copy ours when they are made), priv_drop() turns the process
 * into the `user` of the configuration with only CAP_NET_ADMIN - what
 * libnftables needs to change our table, and nothing else - sets
 * PR_SET_NO_NEW_PRIVS and installs the seccomp filter (sandbox.c).
 *
 * From then on the state file and its journal are written as that user:
 * priv_state_prepare() makes them its own while still root, without ever
 * chowning a directory the daemon did not make (/var/lib, /tmp, ...).
 */
#include <sys/prctl.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cap-ng.h>

#include "log.h"
#include "priv.h"
#include "sandbox.h"
#include "state.h"

/* How the user is made (scripts/install-deps does it). */
#define PRIV_USERADD	"useradd --system --no-create-home " \
			"--home-dir /nonexistent --shell /usr/sbin/nologin"

int
priv_user_lookup(const char *name, struct priv_user *u)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		if (errno != 0)
			log_warn("user %s", name);
		else
			log_warnx("user %s does not exist: create it (%s %s) "
			    "or set `user` in the configuration", name,
			    PRIV_USERADD, name);
		return -1;
	}
	if (snprintf(u->name, sizeof(u->name), "%s", name) >=
	    (int)sizeof(u->name)) {
		log_warnx("user %s: name too long", name);
		return -1;
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	return 0;
}

/* May u create, replace and remove names in the directory? The kernel's
   order: the owner class decides for the owner, the group class for the
   group (only the primary one: supplementary groups are dropped), else
   the others. Root loses CAP_DAC_OVERRIDE too: the same rule. */
static bool
priv_dir_writable(const struct stat *st, const struct priv_user *u)
{
	mode_t need;

	if (st->st_uid == u->uid)
		need = S_IWUSR | S_IXUSR;
	else if (st->st_gid == u->gid)
		need = S_IWGRP | S_IXGRP;
	else
		need = S_IWOTH | S_IXOTH;
	return (st->st_mode & need) == need;
}

enum priv_dir_action
priv_dir_decide(const struct stat *st, bool made, const struct priv_user *u)
{
	if (!S_ISDIR(st->st_mode))
		return PRIV_DIR_DENIED;
	/* ours (iwfd_state_dir made it, 0700, as root): the user's now */
	if (made && st->st_uid == 0 && u->uid != 0)
		return PRIV_DIR_CHOWN;
	/* anything else is used as it is, never chowned: a shared
	   directory (/tmp, /var/lib) must not change hands */
	return priv_dir_writable(st, u) ? PRIV_DIR_OK : PRIV_DIR_DENIED;
}

enum priv_file_action
priv_file_decide(const struct stat *st, const struct priv_user *u)
{
	if (!S_ISREG(st->st_mode))
		return PRIV_FILE_DENIED;
	if (st->st_uid == u->uid)
		return PRIV_FILE_OK;
	/* Root's - this start's first write made it, or an earlier run as
	   root - with one name only: a hard link planted to another file
	   (fs.protected_hardlinks off) must not be handed over. */
	if (st->st_uid == 0 && st->st_nlink == 1)
		return PRIV_FILE_CHOWN;
	return PRIV_FILE_DENIED;
}

/* The directory part of path ("/" for "/x", "." for "x"). */
static void
priv_dirname(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL) {
		snprintf(dir, size, ".");
		return;
	}
	len = slash == path ? 1 : (size_t)(slash - path);
	snprintf(dir, size, "%.*s", (int)len, path);
}

/*
 * The directory priv_state_mkdir() made in this start, by identity: only
 * that one is ever chowned. The process's one start-up writes it, before
 * any thread exists.
 */
static struct {
	bool	made;
	dev_t	dev;
	ino_t	ino;
} priv_made_dir;

int
priv_state_mkdir(const char *dir)
{
	char parent[PATH_MAX];
	const char *name = strrchr(dir, '/');
	struct stat st;
	int pfd, fd, saved;

	priv_made_dir.made = false;
	priv_dirname(dir, parent, sizeof(parent));
	name = name == NULL ? dir : name + 1;
	if (*name == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0) {
		errno = EINVAL;
		return -1;
	}
	if ((pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	/* made and opened through the same parent, the last name never
	   followed: what is recorded is the directory mkdir made, unless
	   someone swapped it in between - then it is not root's, or not
	   empty, or not a directory, and it is refused here */
	fd = -1;
	if (mkdirat(pfd, name, S_IRWXU) == -1 ||
	    (fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || fstat(fd, &st) == -1)
		goto fail;
	if (st.st_uid != geteuid() || st.st_nlink != 2) {
		log_warnx("state directory %s: replaced right after it was "
		    "made: not used", dir);
		errno = EPERM;
		goto fail;
	}
	priv_made_dir.dev = st.st_dev;
	priv_made_dir.ino = st.st_ino;
	priv_made_dir.made = true;
	close(fd);
	close(pfd);
	return 0;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	close(pfd);
	errno = saved;
	return -1;
}

static int
priv_state_dir(const char *dir, bool made, const struct priv_user *u)
{
	struct stat st;
	int fd, rc = -1;

	/* never through a link: the parent may be writable by someone else,
	   who could swap the directory for a link to /etc */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		/* O_NOFOLLOW | O_DIRECTORY on a link: ENOTDIR (or ELOOP) */
		if (errno == ELOOP || errno == ENOTDIR)
			log_warnx("state directory %s: not a directory (a "
			    "symbolic link is refused)", dir);
		else
			log_warn("state directory %s", dir);
		goto out;
	}
	/* made in this start: only if it is still the very directory
	   priv_state_mkdir made (not another one renamed in its place) */
	if (made && (!priv_made_dir.made || st.st_dev != priv_made_dir.dev ||
	    st.st_ino != priv_made_dir.ino)) {
		log_warnx("state directory %s is not the one made at start "
		    "(replaced since?): not given to user %s", dir, u->name);
		goto out;
	}
	switch (priv_dir_decide(&st, made, u)) {
	case PRIV_DIR_OK:
		rc = 0;
		break;
	case PRIV_DIR_CHOWN:
		if (fchown(fd, u->uid, u->gid) == -1) {
			log_warn("state directory %s: chown to %s", dir,
			    u->name);
			break;
		}
		log_info("state directory %s given to user %s", dir, u->name);
		rc = 0;
		break;
	case PRIV_DIR_DENIED:
		log_warnx("state directory %s: user %s cannot write it (owner "
		    "uid %u, group gid %u, mode %04o): make it the user's "
		    "(chown %s %s) or set state_file to a directory the user "
		    "owns", dir, u->name, (unsigned int)st.st_uid,
		    (unsigned int)st.st_gid, (unsigned int)(st.st_mode & 07777),
		    u->name, dir);
		break;
	}
out:
	if (fd != -1)
		close(fd);
	return rc;
}

/* One existing file of the state (absent: nothing to do). Opened without
   following a link, checked and chowned through the descriptor: what was
   checked is what changes hands. */
static int
priv_state_file(const char *path, const struct priv_user *u)
{
	struct stat st;
	int fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP)
			log_warnx("state file %s is a symbolic link: remove it",
			    path);
		else
			log_warn("state file %s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("state file %s", path);
		goto out;
	}
	switch (priv_file_decide(&st, u)) {
	case PRIV_FILE_OK:
		rc = 0;
		break;
	case PRIV_FILE_CHOWN:
		if (fchown(fd, u->uid, u->gid) == -1)
			log_warn("state file %s: chown to %s", path, u->name);
		else
			rc = 0;
		break;
	case PRIV_FILE_DENIED:
		log_warnx("state file %s: not a plain file of user %s or root "
		    "(owner uid %u, %ju links): remove it, or chown %s %s",
		    path, u->name, (unsigned int)st.st_uid,
		    (uintmax_t)st.st_nlink, u->name, path);
		break;
	}
out:
	close(fd);
	return rc;
}

int
priv_state_prepare(const char *user, const char *state_file, bool dir_made)
{
	struct priv_user u;
	char dir[PATH_MAX], journal[PATH_MAX];

	if (priv_user_lookup(user, &u) == -1)
		return -1;
	priv_dirname(state_file, dir, sizeof(dir));
	if (snprintf(journal, sizeof(journal), "%s%s", state_file,
	    STATE_JOURNAL_SUFFIX) >= (int)sizeof(journal)) {
		log_warnx("state file %s: name too long", state_file);
		return -1;
	}
	if (priv_state_dir(dir, dir_made, &u) == -1 ||
	    priv_state_file(state_file, &u) == -1 ||
	    priv_state_file(journal, &u) == -1)
		return -1;
	return 0;
}

/* Become u (uid, gid, no supplementary groups) with the capabilities set
   up in libcap-ng's state; root: the bounding set first (CAP_SETPCAP). */
static int
priv_change_id(const struct priv_user *u)
{
	int rc;

	if ((rc = capng_apply(CAPNG_SELECT_BOUNDS)) != 0) {
		log_warnx("capabilities: cannot clear the bounding set "
		    "(libcap-ng %d)", rc);
		return -1;
	}
	if (u->uid == 0) {
		/* root stays root without root's powers: no capabilities
		   back from uid 0 on an execve or a uid change */
		if (capng_lock() != 0) {
			log_warn("capabilities: securebits");
			return -1;
		}
		rc = capng_apply(CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT);
	} else
		rc = capng_change_id((int)u->uid, (int)u->gid,
		    CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_AMBIENT);
	if (rc != 0) {
		log_warn("cannot switch to user %s (libcap-ng %d)", u->name, rc);
		return -1;
	}
	return 0;
}

/* The log line that says what the daemon runs with now. */
static void
priv_log(const struct priv_user *u)
{
	char *caps;

	caps = capng_print_caps_text(CAPNG_PRINT_BUFFER, CAPNG_EFFECTIVE);
	log_info("privileges dropped: user %s (uid %u, gid %u), capabilities: "
	    "%s", u->name, (unsigned int)getuid(), (unsigned int)getgid(),
	    caps != NULL ? caps : "?");
	free(caps);
}

int
priv_drop(const char *user, bool sandbox, bool net_admin)
{
	struct priv_user u;
	uid_t euid = geteuid();

	if (priv_user_lookup(user, &u) == -1)
		return -1;
	if (euid != 0 && euid != u.uid) {
		log_warnx("running as uid %u: start pcp-iwfd as root (it "
		    "becomes user %s itself) or as %s", (unsigned int)euid,
		    u.name, u.name);
		return -1;
	}
	capng_clear(CAPNG_SELECT_ALL);
	/* CAP_NET_ADMIN: libnftables' netlink changes to our table (nat =
	   local); nothing else needs a capability once the sockets are
	   open (docs/security.md "Capabilities") */
	if (net_admin && capng_update(CAPNG_ADD, CAPNG_EFFECTIVE |
	    CAPNG_PERMITTED | CAPNG_BOUNDING_SET, CAP_NET_ADMIN) == -1) {
		log_warnx("capabilities: cannot keep CAP_NET_ADMIN");
		return -1;
	}
	if (u.uid == 0)
		/* docs/security.md "user = root" */
		log_warnx("user = root: the daemon keeps root's file ownership "
		    "(what it can reach is limited only by the files' modes: "
		    "no CAP_DAC_OVERRIDE); a dedicated user is safer (%s "
		    "pcp-iwfd)", PRIV_USERADD);
	if (euid == 0) {
		if (priv_change_id(&u) == -1)
			return -1;
	} else if (capng_apply(CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT) !=
	    0) {
		/* started as the user (a service manager gave it
		   CAP_NET_ADMIN): only shrink, the bounding set stays */
		log_warnx("capabilities: cannot reduce them to CAP_NET_ADMIN "
		    "(was the daemon started without it?)");
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("prctl PR_SET_NO_NEW_PRIVS");
		return -1;
	}
#if defined(__SANITIZE_ADDRESS__)
	/* The uid change made the process non-dumpable, and LeakSanitizer's
	   tracer attaches with ptrace at exit: a sanitizer build only. */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	priv_log(&u);
	if (!sandbox) {
		log_info("sandbox = no: no system call filter");
		return 0;
	}
	return sandbox_install();
}
