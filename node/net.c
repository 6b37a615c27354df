#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <corral/net.h>

int corral_tcp_peer_timeout(int fd, unsigned dead_ms)
{
	int one = 1;
	int idle = 2;
	int interval = 1;
	int count =
	    (int)(dead_ms / 1000) > idle + 1 ? (int)(dead_ms / 1000) - idle : 1;
	unsigned user = dead_ms;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) !=
		0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval,
		       sizeof interval) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count) !=
		0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof user) !=
		0) {
		return -errno;
	}
	return 0;
}
