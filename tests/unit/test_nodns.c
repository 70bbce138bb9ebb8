/*
 * test_nodns.c - src/nodns.c, the daemon's getaddrinfo() (spec/iwf.md
 * no DNS): linked into this program as into pcp-iwfd, a host name
 * is never resolved ("localhost" from /etc/hosts included: EAI_NONAME),
 * address literals still work, and the definition is the one a shared
 * library (libupnp) binds to.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dlfcn.h>
#include <netdb.h>
#include <string.h>

static void
test_name_refused(void **state)
{
	struct addrinfo hints, *res = NULL;

	(void)state;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* /etc/hosts would answer this one without a DNS server */
	assert_int_equal(getaddrinfo("localhost", NULL, &hints, &res),
	    EAI_NONAME);
	assert_null(res);
	assert_int_equal(getaddrinfo("no-such-host.invalid", "80", &hints,
	    &res), EAI_NONAME);
	/* no hints at all: the same */
	assert_int_equal(getaddrinfo("localhost", NULL, NULL, &res),
	    EAI_NONAME);
}

static void
test_literals_work(void **state)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	(void)state;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	assert_int_equal(getaddrinfo("127.0.0.1", "8080", &hints, &res), 0);
	assert_non_null(res);
	assert_int_equal(res->ai_family, AF_INET);
	assert_true(res->ai_addrlen >= sizeof(sin));
	memcpy(&sin, res->ai_addr, sizeof(sin));
	assert_int_equal(sin.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	assert_int_equal(ntohs(sin.sin_port), 8080);
	freeaddrinfo(res);
	hints.ai_family = AF_INET6;
	assert_int_equal(getaddrinfo("::1", NULL, &hints, &res), 0);
	assert_non_null(res);
	assert_int_equal(res->ai_family, AF_INET6);
	memcpy(&sin6, res->ai_addr, sizeof(sin6));
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6.sin6_addr));
	freeaddrinfo(res);
	/* a numeric service with no node (a passive socket) */
	hints.ai_family = AF_INET;
	hints.ai_flags = AI_PASSIVE;
	assert_int_equal(getaddrinfo(NULL, "1900", &hints, &res), 0);
	assert_non_null(res);
	freeaddrinfo(res);
}

/* The dynamic linker's answer for the name is ours (exported in .dynsym,
   so libupnp's calls land here), and libc's is still reachable behind it
   (it resolves "localhost" from /etc/hosts). */
static void
test_interposed(void **state)
{
	typedef int (*gai_fn)(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **);
	struct addrinfo hints, *res = NULL;
	void *dflt, *next;
	gai_fn fn;

	(void)state;
	assert_non_null(dflt = dlsym(RTLD_DEFAULT, "getaddrinfo"));
	assert_non_null(next = dlsym(RTLD_NEXT, "getaddrinfo"));
	assert_ptr_not_equal(dflt, next);
	memcpy(&fn, &dflt, sizeof(fn));
	assert_true(fn == getaddrinfo);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	memcpy(&fn, &next, sizeof(fn));
	assert_int_equal(fn("localhost", NULL, &hints, &res), 0);
	assert_non_null(res);
	freeaddrinfo(res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_refused),
		cmocka_unit_test(test_literals_work),
		cmocka_unit_test(test_interposed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
