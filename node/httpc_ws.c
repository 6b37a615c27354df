/* The client side of RFC 6455 websockets on an httpc connection: the
 * upgrade request, masked frames out, unmasked frames in, control frames
 * answered as they arrive. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <corral/httpc.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum {
	WS_CONT = 0x0,
	WS_TEXT = 0x1,
	WS_BINARY = 0x2,
	WS_CLOSE = 0x8,
	WS_PING = 0x9,
	WS_PONG = 0xa,
};

void httpc_ws_accept_key(const char *key, char out[HTTPC_WS_ACCEPT_SIZE])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *md;

	out[0] = '\0';
	md = EVP_MD_CTX_new();
	if (md == NULL) {
		return;
	}
	if (EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
	    EVP_DigestUpdate(md, key, strlen(key)) == 1 &&
	    EVP_DigestUpdate(md, WS_GUID, strlen(WS_GUID)) == 1 &&
	    EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 20) {
		EVP_EncodeBlock((unsigned char *)out, digest, (int)dlen);
	}
	EVP_MD_CTX_free(md);
}

size_t httpc_ws_frame(int opcode,
		      const void *data,
		      size_t len,
		      const unsigned char mask[4],
		      unsigned char *out)
{
	const unsigned char *p = data;
	size_t n = 0;
	size_t i;

	out[n++] = (unsigned char)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		out[n++] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		out[n++] = 0x80 | 126;
		out[n++] = (unsigned char)(len >> 8);
		out[n++] = (unsigned char)len;
	} else {
		out[n++] = 0x80 | 127;
		for (i = 0; i < 8; i++) {
			out[n++] =
			    (unsigned char)((uint64_t)len >> (56 - 8 * i));
		}
	}
	memcpy(out + n, mask, 4);
	n += 4;
	for (i = 0; i < len; i++) {
		out[n + i] = p[i] ^ mask[i % 4];
	}
	return n + len;
}

int httpc_ws_send(struct httpc_ws *ws, int opcode, const void *data, size_t len)
{
	struct httpc_client *c = ws->c;
	unsigned char mask[4];
	unsigned char *frame;
	size_t n;
	int rv;

	if (len > HTTPC_WS_MAX_MESSAGE) {
		return -EMSGSIZE;
	}
	if (RAND_bytes(mask, sizeof mask) != 1) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "no randomness for the websocket mask");
		return CORRAL_ETLS;
	}
	frame = malloc(len + 14);
	if (frame == NULL) {
		return -ENOMEM;
	}
	n = httpc_ws_frame(opcode, data, len, mask, frame);
	rv = c->ops->write(c->impl, frame, n);
	free(frame);
	if (rv != 0) {
		corral_errf(c->errmsg, sizeof c->errmsg, "websocket send: %s",
			    corral_strerror(rv));
	}
	return rv;
}

int httpc_ws_open(struct httpc_ws *ws, struct httpc_client *c, const char *path)
{
	unsigned char raw[16];
	char key[32];
	char expect[HTTPC_WS_ACCEPT_SIZE];
	struct httpc_header headers[4] = {
		{ "Upgrade", "websocket" },
		{ "Connection", "Upgrade" },
		{ "Sec-WebSocket-Version", "13" },
		{ "Sec-WebSocket-Key", key },
	};
	struct httpc_request req = {
		.method = "GET",
		.path = path,
		.headers = headers,
		.n_headers = 4,
	};
	struct httpc_response resp;
	struct httpc_envelope env;
	const char *accept;
	int rv;

	memset(ws, 0, sizeof *ws);
	ws->c = c;
	if (RAND_bytes(raw, sizeof raw) != 1) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "no randomness for the websocket key");
		return CORRAL_ETLS;
	}
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
	rv = httpc_do(c, &req, &resp);
	if (rv != 0) {
		return rv;
	}
	if (resp.status != 101) {
		rv = CORRAL_EPROTO;
		if (httpc_envelope_parse(resp.body, resp.body_len, resp.status,
					 &env, c->errmsg,
					 sizeof c->errmsg) == 0) {
			corral_errf(c->errmsg, sizeof c->errmsg, "%s",
				    env.error[0] != '\0' ? env.error
							 : "websocket refused");
			if (env.error_code == 403) {
				rv = CORRAL_EFORBIDDEN;
			}
			httpc_envelope_close(&env);
		} else {
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "websocket upgrade of %s: HTTP %d", path,
				    resp.status);
		}
		httpc_response_close(&resp);
		return rv;
	}
	httpc_ws_accept_key(key, expect);
	accept = httpc_response_header(&resp, "Sec-WebSocket-Accept");
	if (accept == NULL || expect[0] == '\0' ||
	    strcmp(accept, expect) != 0) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "websocket upgrade of %s: bad Sec-WebSocket-Accept",
			    path);
		httpc_response_close(&resp);
		return CORRAL_EPROTO;
	}
	httpc_response_close(&resp);
	return 0;
}

/* Read exactly @n bytes into @dst: first what httpc buffered after the
 * upgrade response, then from the transport. */
static int read_exact(struct httpc_ws *ws, void *dst, size_t n, int timeout_ms)
{
	struct httpc_client *c = ws->c;
	unsigned char *p = dst;
	size_t take;
	ssize_t got;

	while (n > 0) {
		if (c->rbuf_len > 0) {
			take = n < c->rbuf_len ? n : c->rbuf_len;
			memcpy(p, c->rbuf, take);
			memmove(c->rbuf, c->rbuf + take, c->rbuf_len - take);
			c->rbuf_len -= take;
			p += take;
			n -= take;
			continue;
		}
		got = c->ops->read(c->impl, p, n, timeout_ms);
		if (got == 0) {
			return -ECONNRESET;
		}
		if (got < 0) {
			return (int)got;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

/* Append @n payload bytes of the current frame to the message. */
static int read_payload(struct httpc_ws *ws,
			uint64_t n,
			const unsigned char *mask,
			int timeout_ms)
{
	unsigned char *grown;
	size_t cap;
	size_t i;
	int rv;

	if (n > HTTPC_WS_MAX_MESSAGE - ws->msg_len) {
		return -EMSGSIZE;
	}
	if (ws->msg_len + n + 1 > ws->msg_cap) {
		cap = ws->msg_cap == 0 ? 4096 : ws->msg_cap;
		while (cap < ws->msg_len + n + 1) {
			cap *= 2;
		}
		grown = realloc(ws->msg, cap);
		if (grown == NULL) {
			return -ENOMEM;
		}
		ws->msg = grown;
		ws->msg_cap = cap;
	}
	rv = read_exact(ws, ws->msg + ws->msg_len, (size_t)n, timeout_ms);
	if (rv != 0) {
		return rv;
	}
	if (mask != NULL) {
		for (i = 0; i < n; i++) {
			ws->msg[ws->msg_len + i] ^= mask[i % 4];
		}
	}
	ws->msg_len += (size_t)n;
	ws->msg[ws->msg_len] = '\0';
	return 0;
}

int httpc_ws_read(struct httpc_ws *ws,
		  const char **out,
		  size_t *len,
		  int timeout_ms)
{
	struct httpc_client *c = ws->c;
	unsigned char head[2];
	unsigned char ext[8];
	unsigned char mask[4];
	unsigned char control[125];
	bool in_message = false;
	uint64_t plen;
	size_t start;
	int opcode;
	bool fin;
	int rv;
	int i;

	ws->msg_len = 0;
	for (;;) {
		rv = read_exact(ws, head, 2, timeout_ms);
		if (rv != 0) {
			goto err;
		}
		fin = (head[0] & 0x80) != 0;
		opcode = head[0] & 0x0f;
		plen = head[1] & 0x7f;
		if ((head[0] & 0x70) != 0) {
			rv = CORRAL_EPROTO;
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "websocket: reserved bits set");
			return rv;
		}
		if (plen == 126) {
			rv = read_exact(ws, ext, 2, timeout_ms);
			plen = ((uint64_t)ext[0] << 8) | ext[1];
		} else if (plen == 127) {
			rv = read_exact(ws, ext, 8, timeout_ms);
			plen = 0;
			for (i = 0; i < 8; i++) {
				plen = (plen << 8) | ext[i];
			}
		}
		if (rv == 0 && (head[1] & 0x80) != 0) {
			rv = read_exact(ws, mask, 4, timeout_ms);
		}
		if (rv != 0) {
			goto err;
		}
		if (opcode >= 0x8) {
			/* Control frames: short, never fragmented. */
			if (plen > sizeof control || !fin) {
				corral_errf(c->errmsg, sizeof c->errmsg,
					    "websocket: bad control frame");
				return CORRAL_EPROTO;
			}
			start = ws->msg_len;
			rv = read_payload(ws, plen,
					  (head[1] & 0x80) != 0 ? mask : NULL,
					  timeout_ms);
			if (rv != 0) {
				goto err;
			}
			memcpy(control, ws->msg + start, (size_t)plen);
			ws->msg_len = start;
			if (opcode == WS_PING) {
				rv = httpc_ws_send(ws, WS_PONG, control,
						   (size_t)plen);
				if (rv != 0) {
					return rv;
				}
			} else if (opcode == WS_CLOSE) {
				/* Echo the status code, then end. */
				httpc_ws_send(ws, WS_CLOSE, control,
					      plen >= 2 ? 2 : 0);
				corral_errf(c->errmsg, sizeof c->errmsg,
					    "websocket closed by the server");
				return -ECONNRESET;
			}
			continue;
		}
		if ((opcode == WS_CONT) != in_message ||
		    (opcode != WS_CONT && opcode != WS_TEXT &&
		     opcode != WS_BINARY)) {
			corral_errf(c->errmsg, sizeof c->errmsg,
				    "websocket: unexpected opcode %d", opcode);
			return CORRAL_EPROTO;
		}
		in_message = true;
		rv = read_payload(ws, plen, (head[1] & 0x80) != 0 ? mask : NULL,
				  timeout_ms);
		if (rv != 0) {
			goto err;
		}
		if (fin) {
			*out = (const char *)ws->msg;
			*len = ws->msg_len;
			return 0;
		}
	}

err:
	if (rv == -EMSGSIZE) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "websocket message larger than %u bytes",
			    HTTPC_WS_MAX_MESSAGE);
	} else if (rv == -ECONNRESET) {
		corral_errf(c->errmsg, sizeof c->errmsg,
			    "websocket: connection closed");
	} else {
		corral_errf(c->errmsg, sizeof c->errmsg, "websocket: %s",
			    corral_strerror(rv));
	}
	return rv;
}

void httpc_ws_close(struct httpc_ws *ws)
{
	static const unsigned char normal[2] = { 0x03, 0xe8 }; /* 1000 */

	if (ws->c != NULL && ws->c->connected) {
		httpc_ws_send(ws, WS_CLOSE, normal, sizeof normal);
	}
	free(ws->msg);
	memset(ws, 0, sizeof *ws);
}
