/* Socket settings shared by the member channel's two ends. */
#ifndef CORRAL_NET_H
#define CORRAL_NET_H

/* How long a member channel stream may go without the peer acknowledging
 * what was sent, or answering keepalive probes while idle, before the
 * kernel drops it: a member whose host vanished (power off, link down: no
 * RST ever comes) is given up in seconds, not after TCP's 15 minutes. */
#define CORRAL_PEER_DEAD_MS 3000

/* On the TCP socket @fd: TCP keepalive (probes after 2 s idle, every 1 s)
 * and TCP_USER_TIMEOUT, both bounded by @dead_ms. Returns 0 or a negated
 * errno (the socket is usable either way). */
int corral_tcp_peer_timeout(int fd, unsigned dead_ms);

#endif /* CORRAL_NET_H */
