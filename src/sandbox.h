/*
 * sandbox.h - the seccomp allow-list (libseccomp) the daemon runs under
 * once its privileges are dropped (docs/security.md "System calls").
 */
#ifndef IWFD_SANDBOX_H
#define IWFD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* One allowed system call and what the daemon needs it for. */
struct sandbox_syscall {
	const char	*name;		/* libseccomp's (and the kernel's) */
	const char	*why;
};

/* The allow-list, in docs/security.md's order. */
const struct sandbox_syscall *sandbox_allow_list(size_t *count);

/* Does this build install the filter? Not in a sanitizer build: LeakSanitizer
   stops the world with ptrace(2) at exit, and ASan's reports need more. */
bool	sandbox_supported(void);

/*
 * Install the filter on the calling thread (the threads it starts later
 * inherit it); a call outside the list raises SIGSYS, whose handler names
 * the call on stderr and lets the signal end the process. 0, or -1
 * (logged). Skipped with a log line where !sandbox_supported().
 */
int	sandbox_install(void);
/* The same without the sanitizer check (tests run it in a child). */
int	sandbox_load(void);

#endif
