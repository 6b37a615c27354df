/* Unit tests of node/net.c: the settings that let the kernel give up a
 * member channel stream whose peer vanished. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <corral/net.h>

static int get_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;

	assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

/* Keepalive on, probes from 2 s idle every 1 s, and the user timeout: the
 * whole detection fits in the bound. */
static void test_tcp_peer_timeout(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int idle;
	int interval;
	int count;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
	assert_int_equal(corral_tcp_peer_timeout(fd, CORRAL_PEER_DEAD_MS), 0);
	assert_int_equal(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT),
			 CORRAL_PEER_DEAD_MS);
	idle = get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE);
	interval = get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL);
	count = get_int(fd, IPPROTO_TCP, TCP_KEEPCNT);
	assert_int_equal(idle, 2);
	assert_int_equal(interval, 1);
	assert_true(count >= 1);
	assert_true((idle + interval * count) * 1000 <= CORRAL_PEER_DEAD_MS);
	close(fd);
}

/* A longer bound gives more probes, still within it. */
static void test_tcp_peer_timeout_longer(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(corral_tcp_peer_timeout(fd, 10000), 0);
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 10000);
	assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 8);
	close(fd);
}

/* Not a TCP socket: an error, nothing else. */
static void test_tcp_peer_timeout_not_tcp(void **state)
{
	int fds[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_true(corral_tcp_peer_timeout(fds[0], CORRAL_PEER_DEAD_MS) < 0);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_peer_timeout),
		cmocka_unit_test(test_tcp_peer_timeout_longer),
		cmocka_unit_test(test_tcp_peer_timeout_not_tcp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
