/*
 * test_priv.c - least privilege (src/priv.c, src/sandbox.c): the state
 * directory and file decisions, the start-up chowns on a real directory,
 * the drop itself and the seccomp filter in forked children (root only
 * for those that change ids: ctest runs as root in CI): threads only (no
 * fork, no clone into new namespaces), netlink only for rtnetlink and
 * nftables; the state directory swapped between its mkdir and chown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/sched.h>

#include <pthread.h>

#include <cap-ng.h>
#include <seccomp.h>

#include "priv.h"
#include "sandbox.h"
#include "state.h"

#define TEST_UID	999
#define TEST_GID	995
#define OTHER_UID	1234
#define OTHER_GID	1234
#define SECURITY_MD	IWFD_TEST_DATA_DIR "/../docs/security.md"
/* every other user's test account: exists on any Debian */
#define TEST_USER	"nobody"

/* a file of another user, mode 0600 (test_drop_root) */
static char other_file[] = "/tmp/test_priv_dac.XXXXXX";

static const struct priv_user test_user = { "pcp-iwfd", TEST_UID, TEST_GID };
static const struct priv_user test_root = { "root", 0, 0 };

static struct stat
st_make(mode_t mode, uid_t uid, gid_t gid, nlink_t nlink)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = mode;
	st.st_uid = uid;
	st.st_gid = gid;
	st.st_nlink = nlink;
	return st;
}

/* ---- the state directory ---- */

static void
test_dir_made_is_given_away(void **state)
{
	struct stat st = st_make(S_IFDIR | 0700, 0, 0, 2);

	(void)state;
	assert_int_equal(priv_dir_decide(&st, true, &test_user),
	    PRIV_DIR_CHOWN);
	/* root keeps root's own directory */
	assert_int_equal(priv_dir_decide(&st, true, &test_root), PRIV_DIR_OK);
	/* made, but somebody else's by now: never chowned */
	st = st_make(S_IFDIR | 0700, OTHER_UID, OTHER_GID, 2);
	assert_int_equal(priv_dir_decide(&st, true, &test_user),
	    PRIV_DIR_DENIED);
}

static void
test_dir_not_made_is_never_chowned(void **state)
{
	struct stat st = st_make(S_IFDIR | 0700, 0, 0, 2);

	(void)state;
	/* /var/lib/pcp-iwfd of an older run as root: the admin's move */
	assert_int_equal(priv_dir_decide(&st, false, &test_user),
	    PRIV_DIR_DENIED);
	/* /var/lib: 0755 root */
	st = st_make(S_IFDIR | 0755, 0, 0, 2);
	assert_int_equal(priv_dir_decide(&st, false, &test_user),
	    PRIV_DIR_DENIED);
	/* /tmp: used as it is (anyone may write), not taken over */
	st = st_make(S_IFDIR | 01777, 0, 0, 2);
	assert_int_equal(priv_dir_decide(&st, false, &test_user), PRIV_DIR_OK);
}

static void
test_dir_permission_classes(void **state)
{
	struct stat st;

	(void)state;
	st = st_make(S_IFDIR | 0700, TEST_UID, TEST_GID, 2);
	assert_int_equal(priv_dir_decide(&st, false, &test_user), PRIV_DIR_OK);
	/* the owner class decides for the owner, even if others may */
	st = st_make(S_IFDIR | 0577, TEST_UID, TEST_GID, 2);
	assert_int_equal(priv_dir_decide(&st, false, &test_user),
	    PRIV_DIR_DENIED);
	/* through the primary group */
	st = st_make(S_IFDIR | 0770, 0, TEST_GID, 2);
	assert_int_equal(priv_dir_decide(&st, false, &test_user), PRIV_DIR_OK);
	st = st_make(S_IFDIR | 0750, 0, TEST_GID, 2);
	assert_int_equal(priv_dir_decide(&st, false, &test_user),
	    PRIV_DIR_DENIED);
	/* root without CAP_DAC_OVERRIDE: another user's 0755 is closed */
	st = st_make(S_IFDIR | 0755, OTHER_UID, OTHER_GID, 2);
	assert_int_equal(priv_dir_decide(&st, false, &test_root),
	    PRIV_DIR_DENIED);
	/* not a directory */
	st = st_make(S_IFREG | 0777, TEST_UID, TEST_GID, 1);
	assert_int_equal(priv_dir_decide(&st, true, &test_user),
	    PRIV_DIR_DENIED);
}

/* ---- the state file and the journal ---- */

static void
test_file_decide(void **state)
{
	struct stat st;

	(void)state;
	st = st_make(S_IFREG | 0600, TEST_UID, TEST_GID, 1);
	assert_int_equal(priv_file_decide(&st, &test_user), PRIV_FILE_OK);
	/* written by root at this start (or a run as root before) */
	st = st_make(S_IFREG | 0600, 0, 0, 1);
	assert_int_equal(priv_file_decide(&st, &test_user), PRIV_FILE_CHOWN);
	assert_int_equal(priv_file_decide(&st, &test_root), PRIV_FILE_OK);
	/* a second name: maybe a planted hard link to another root file */
	st = st_make(S_IFREG | 0600, 0, 0, 2);
	assert_int_equal(priv_file_decide(&st, &test_user), PRIV_FILE_DENIED);
	/* somebody else's */
	st = st_make(S_IFREG | 0600, OTHER_UID, OTHER_GID, 1);
	assert_int_equal(priv_file_decide(&st, &test_user), PRIV_FILE_DENIED);
	/* not a plain file */
	st = st_make(S_IFDIR | 0700, 0, 0, 2);
	assert_int_equal(priv_file_decide(&st, &test_user), PRIV_FILE_DENIED);
	st = st_make(S_IFIFO | 0600, 0, 0, 1);
	assert_int_equal(priv_file_decide(&st, &test_user), PRIV_FILE_DENIED);
}

static void
test_user_lookup(void **state)
{
	struct priv_user u;

	(void)state;
	assert_int_equal(priv_user_lookup("root", &u), 0);
	assert_int_equal(u.uid, 0);
	assert_string_equal(u.name, "root");
	assert_int_equal(priv_user_lookup("no-such-user-iwfd", &u), -1);
}

/* ---- start-up on a real directory (root) ---- */

static bool
skip_unless_root(void)
{
	if (geteuid() == 0)
		return false;
	printf("SKIP: needs root (chown, setuid)\n");
	return true;
}

static void
touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	close(fd);
}

static void
test_state_prepare(void **state)
{
	char top[] = "/tmp/test_priv.XXXXXX", dir[128], file[192],
	    journal[256], link2[192], shared[192];
	struct passwd *pw;
	struct stat st;

	(void)state;
	if (skip_unless_root())
		return;
	assert_non_null(pw = getpwnam(TEST_USER));
	assert_non_null(mkdtemp(top));
	snprintf(dir, sizeof(dir), "%s/made", top);
	snprintf(file, sizeof(file), "%s/state", dir);
	snprintf(journal, sizeof(journal), "%s%s", file, STATE_JOURNAL_SUFFIX);
	assert_int_equal(priv_state_mkdir(dir), 0);
	assert_int_equal(priv_state_mkdir(dir), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(priv_state_mkdir(dir), -1);	/* forgets */
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(priv_state_mkdir(dir), 0);
	touch(file);
	touch(journal);
	/* made now: the directory, the file and the journal change hands */
	assert_int_equal(priv_state_prepare(TEST_USER, file, true), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_uid, pw->pw_uid);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, pw->pw_uid);
	assert_int_equal(stat(journal, &st), 0);
	assert_int_equal(st.st_uid, pw->pw_uid);
	/* the next start: the user's directory, nothing to do */
	assert_int_equal(priv_state_prepare(TEST_USER, file, false), 0);
	/* a root file left in the user's directory by a run as root */
	assert_int_equal(chown(file, 0, 0), 0);
	assert_int_equal(priv_state_prepare(TEST_USER, file, false), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, pw->pw_uid);
	/* ... but not one with a second name */
	assert_int_equal(chown(file, 0, 0), 0);
	snprintf(link2, sizeof(link2), "%s/other-name", top);
	assert_int_equal(link(file, link2), 0);
	assert_int_equal(priv_state_prepare(TEST_USER, file, false), -1);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(unlink(link2), 0);
	/* a symbolic link as the state file is refused */
	assert_int_equal(unlink(file), 0);
	assert_int_equal(symlink("/etc/passwd", file), 0);
	assert_int_equal(priv_state_prepare(TEST_USER, file, false), -1);
	assert_int_equal(lstat("/etc/passwd", &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(unlink(file), 0);
	/* a root directory the daemon did not make: a fatal error, never
	   chowned (top is root's 0700) */
	snprintf(shared, sizeof(shared), "%s/state", top);
	assert_int_equal(priv_state_prepare(TEST_USER, shared, false), -1);
	assert_int_equal(stat(top, &st), 0);
	assert_int_equal(st.st_uid, 0);
	/* a missing user */
	assert_int_equal(priv_state_prepare("no-such-user-iwfd", file, true),
	    -1);
	unlink(journal);
	rmdir(dir);
	rmdir(top);
}

/*
 * The directory made at start is swapped, before its chown, by someone
 * who can write its parent: for a link to a root directory (/etc), or for
 * another root directory renamed in its place. Neither changes hands.
 */
static void
test_state_dir_swapped(void **state)
{
	char top[] = "/tmp/test_priv_swap.XXXXXX", dir[128], file[192],
	    etc[128], aside[128];
	struct passwd *pw;
	struct stat st;

	(void)state;
	if (skip_unless_root())
		return;
	assert_non_null(pw = getpwnam(TEST_USER));
	assert_non_null(mkdtemp(top));
	snprintf(dir, sizeof(dir), "%s/made", top);
	snprintf(file, sizeof(file), "%s/state", dir);
	snprintf(etc, sizeof(etc), "%s/etc", top);
	snprintf(aside, sizeof(aside), "%s/aside", top);
	assert_int_equal(mkdir(etc, 0755), 0);

	/* a link to /etc in the new directory's place */
	assert_int_equal(priv_state_mkdir(dir), 0);
	assert_int_equal(rename(dir, aside), 0);
	assert_int_equal(symlink(etc, dir), 0);
	assert_int_equal(priv_state_prepare(TEST_USER, file, true), -1);
	assert_int_equal(stat(etc, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(unlink(dir), 0);

	/* another root directory renamed in its place */
	assert_int_equal(rename(etc, dir), 0);
	assert_int_equal(priv_state_prepare(TEST_USER, file, true), -1);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_uid, 0);

	/* the very directory made, back in place: given away */
	assert_int_equal(rename(dir, etc), 0);
	assert_int_equal(rename(aside, dir), 0);
	assert_int_equal(priv_state_prepare(TEST_USER, file, true), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_uid, pw->pw_uid);
	assert_int_equal(stat(etc, &st), 0);
	assert_int_equal(st.st_uid, 0);
	rmdir(dir);
	rmdir(etc);
	rmdir(top);
}

/* ---- the drop and the filter, in children ---- */

/* exit codes of the children: which check failed */
enum {
	CHILD_OK, CHILD_DROP, CHILD_UID, CHILD_CAPS, CHILD_NNP, CHILD_SECCOMP,
	CHILD_SOCKET, CHILD_LOAD, CHILD_FILE, CHILD_CLONE
};

/* Run fn in a child; its wait status. */
static int
in_child(int (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* fn ran in a child and returned CHILD_OK */
static void
assert_child_ok(int (*fn)(void))
{
	int status = in_child(fn);

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), CHILD_OK);
}

/* fn's child was ended by the filter (SIGSYS) */
static void
assert_child_killed(int (*fn)(void))
{
	int status = in_child(fn);

	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* "Key:\tvalue" of /proc/self/status into buf; false when absent. */
static bool
proc_status(const char *key, char *buf, size_t size)
{
	char line[256];
	size_t klen = strlen(key);
	FILE *f;
	bool found = false;

	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			snprintf(buf, size, "%s", line + klen + 1);
			buf[strcspn(buf, "\n")] = '\0';
			found = true;
			break;
		}
	fclose(f);
	return found;
}

static bool
proc_is(const char *key, const char *want)
{
	char v[128];

	return proc_status(key, v, sizeof(v)) && strcmp(v + strspn(v, "\t "),
	    want) == 0;
}

static int
child_drop(void)
{
	struct passwd *pw = getpwnam(TEST_USER);
	char want[64];

	if (pw == NULL || priv_drop(TEST_USER, true, true) == -1)
		return CHILD_DROP;
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", (unsigned int)pw->pw_uid,
	    (unsigned int)pw->pw_uid, (unsigned int)pw->pw_uid,
	    (unsigned int)pw->pw_uid);
	if (!proc_is("Uid", want) || getgid() != pw->pw_gid)
		return CHILD_UID;
	/* CAP_NET_ADMIN is bit 12 */
	if (!proc_is("CapEff", "0000000000001000") ||
	    !proc_is("CapPrm", "0000000000001000") ||
	    !proc_is("CapBnd", "0000000000001000") ||
	    !proc_is("CapInh", "0000000000000000") ||
	    !proc_is("CapAmb", "0000000000000000"))
		return CHILD_CAPS;
	/* prctl(2) itself is not on the allow-list */
	if (!proc_is("NoNewPrivs", "1"))
		return CHILD_NNP;
	if (!proc_is("Seccomp", sandbox_supported() ? "2" : "0"))
		return CHILD_SECCOMP;
	return CHILD_OK;
}

static void
test_drop(void **state)
{
	(void)state;
	if (skip_unless_root())
		return;
	assert_child_ok(child_drop);
}

/* nat = none: no capability at all */
static int
child_drop_no_caps(void)
{
	if (priv_drop(TEST_USER, false, false) == -1)
		return CHILD_DROP;
	if (!proc_is("CapEff", "0000000000000000") ||
	    !proc_is("CapPrm", "0000000000000000") ||
	    !proc_is("CapBnd", "0000000000000000"))
		return CHILD_CAPS;
	/* sandbox = no */
	if (!proc_is("Seccomp", "0"))
		return CHILD_SECCOMP;
	return CHILD_OK;
}

static void
test_drop_no_caps(void **state)
{
	(void)state;
	if (skip_unless_root())
		return;
	assert_child_ok(child_drop_no_caps);
}

/* user = root: still root, without root's capabilities */
static int
child_drop_root(void)
{
	if (priv_drop("root", false, true) == -1)
		return CHILD_DROP;
	if (getuid() != 0 || geteuid() != 0)
		return CHILD_UID;
	if (!proc_is("CapEff", "0000000000001000") ||
	    !proc_is("CapBnd", "0000000000001000"))
		return CHILD_CAPS;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return CHILD_NNP;
	/* no CAP_DAC_OVERRIDE: root cannot read another user's 0600 file */
	if (open(other_file, O_RDONLY) != -1)
		return CHILD_FILE;
	return CHILD_OK;
}

static void
test_drop_root(void **state)
{
	int status, fd;

	(void)state;
	if (skip_unless_root())
		return;
	assert_true((fd = mkstemp(other_file)) >= 0);
	assert_int_equal(fchown(fd, OTHER_UID, OTHER_GID), 0);
	close(fd);
	status = in_child(child_drop_root);
	unlink(other_file);	/* before the asserts, which return */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), CHILD_OK);
}

/* The filter lets the daemon's calls through ... */
static int
child_filter_allows(void)
{
	char buf[64];
	int fd;

	if (sandbox_load() == -1)
		return CHILD_LOAD;
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return CHILD_SOCKET;
	close(fd);
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_ROUTE)) == -1)
		return CHILD_SOCKET;
	close(fd);
	/* libnftables */
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_NETFILTER)) == -1)
		return CHILD_SOCKET;
	close(fd);
	if (!proc_status("Seccomp", buf, sizeof(buf)))
		return CHILD_FILE;
	return CHILD_OK;
}

/* ... and anything else ends the process with SIGSYS. */
static int
child_filter_execve(void)
{
	static char prog[] = "/bin/true";
	char *argv[] = { prog, NULL };

	if (sandbox_load() == -1)
		return CHILD_LOAD;
	execve(argv[0], argv, NULL);
	return CHILD_OK;
}

static int
child_filter_ptrace(void)
{
	if (sandbox_load() == -1)
		return CHILD_LOAD;
	(void)syscall(SYS_ptrace, 0, 0, 0, 0);
	return CHILD_OK;
}

/* socket(2): only the four families */
static int
child_filter_packet(void)
{
	if (sandbox_load() == -1)
		return CHILD_LOAD;
	(void)socket(AF_PACKET, SOCK_RAW, 0);
	return CHILD_OK;
}

/* netlink: only rtnetlink and nfnetlink (not IPsec's, with CAP_NET_ADMIN) */
static int
child_filter_xfrm(void)
{
	if (sandbox_load() == -1)
		return CHILD_LOAD;
	(void)socket(AF_NETLINK, SOCK_RAW, NETLINK_XFRM);
	return CHILD_OK;
}

static void *
thread_main(void *arg)
{
	return arg;
}

/* threads still work: clone3 answers ENOSYS, and glibc's pthread_create
   falls back to clone(CLONE_THREAD | ...) */
static int
child_filter_threads(void)
{
	struct clone_args ca;
	pthread_t t;
	void *ret = NULL;
	int x = 0;

	if (sandbox_load() == -1)
		return CHILD_LOAD;
	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	if (syscall(SYS_clone3, &ca, sizeof(ca)) != -1 || errno != ENOSYS)
		return CHILD_CLONE;
	if (pthread_create(&t, NULL, thread_main, &x) != 0 ||
	    pthread_join(t, &ret) != 0 || ret != &x)
		return CHILD_CLONE;
	return CHILD_OK;
}

/* clone with a new user (and network) namespace: a child with every
   capability in them. Without the filter's check it would run. */
static int
child_filter_clone_newuser(void)
{
	long pid;

	if (sandbox_load() == -1)
		return CHILD_LOAD;
	pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | CLONE_NEWNET |
	    SIGCHLD), NULL, NULL, NULL, 0UL);
	if (pid == 0)
		_exit(CHILD_OK);
	return CHILD_OK;
}

/* fork(2) (glibc: clone without CLONE_THREAD) */
static int
child_filter_fork(void)
{
	pid_t pid;

	if (sandbox_load() == -1)
		return CHILD_LOAD;
	if ((pid = fork()) == 0)
		_exit(CHILD_OK);
	return CHILD_OK;
}

static void
test_filter(void **state)
{
	(void)state;
	/* a sanitizer build never installs it, and ASan's runtime makes
	   calls the daemon does not */
	if (!sandbox_supported())
		skip();
	assert_child_ok(child_filter_allows);
	assert_child_killed(child_filter_execve);
	assert_child_killed(child_filter_ptrace);
	assert_child_killed(child_filter_packet);
	/* these end the process (SIGSYS) like any call off the list, rather
	   than failing with an errno: an attempt is a compromise, and a
	   daemon that went on after it would give a second try */
	assert_child_killed(child_filter_xfrm);
	assert_child_killed(child_filter_clone_newuser);
	assert_child_killed(child_filter_fork);
	assert_child_ok(child_filter_threads);
}

/* Every name is a system call libseccomp knows, listed once, and
   documented in docs/security.md (the list there is the whole list). */
static void
test_allow_list(void **state)
{
	const struct sandbox_syscall *list;
	char *doc, pattern[64];
	size_t n, i, j;
	long len;
	FILE *f;

	(void)state;
	list = sandbox_allow_list(&n);
	assert_true(n > 0);
	assert_non_null(f = fopen(SECURITY_MD, "r"));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((len = ftell(f)) > 0);
	rewind(f);
	assert_non_null(doc = calloc(1, (size_t)len + 1));
	assert_int_equal(fread(doc, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	for (i = 0; i < n; i++) {
		assert_int_not_equal(seccomp_syscall_resolve_name(list[i].name),
		    __NR_SCMP_ERROR);
		assert_true(strlen(list[i].why) > 0);
		for (j = i + 1; j < n; j++)
			assert_string_not_equal(list[i].name, list[j].name);
		snprintf(pattern, sizeof(pattern), "| `%s` |", list[i].name);
		if (strstr(doc, pattern) == NULL)
			fail_msg("%s is not in docs/security.md", list[i].name);
	}
	free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_made_is_given_away),
		cmocka_unit_test(test_dir_not_made_is_never_chowned),
		cmocka_unit_test(test_dir_permission_classes),
		cmocka_unit_test(test_file_decide),
		cmocka_unit_test(test_user_lookup),
		cmocka_unit_test(test_state_prepare),
		cmocka_unit_test(test_state_dir_swapped),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_drop_no_caps),
		cmocka_unit_test(test_drop_root),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_allow_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
