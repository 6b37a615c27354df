#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corral/log.h>

#include "api.h"

char *api_envelope_sync(json_t *metadata, unsigned status, size_t *len)
{
	json_t *env;
	char *out;

	env = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:O?}", "type", "sync",
			"status", "Success", "status_code", 200, "operation",
			"", "error_code", 0, "error", "", "metadata", metadata);
	(void)status;
	if (env == NULL) {
		return NULL;
	}
	out = json_dumps(env, JSON_COMPACT);
	json_decref(env);
	if (out != NULL && len != NULL) {
		*len = strlen(out);
	}
	return out;
}

char *api_envelope_error(unsigned status, const char *msg, size_t *len)
{
	json_t *env;
	char *out;

	env = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:n}", "type", "error",
			"status", "", "status_code", 0, "operation", "",
			"error_code", (int)status, "error", msg, "metadata");
	if (env == NULL) {
		return NULL;
	}
	out = json_dumps(env, JSON_COMPACT);
	json_decref(env);
	if (out != NULL && len != NULL) {
		*len = strlen(out);
	}
	return out;
}

static void req_finish(struct api_req *r,
		       unsigned status,
		       const char *headers,
		       const char *body,
		       size_t len)
{
	struct http_conn *conn = r->conn;

	if (log_enabled(LOG_LEVEL_DEBUG)) {
		uint64_t us = (uv_hrtime() - r->http->start_ns) / 1000;
		log_debug("msg=\"request\" method=%s path=%s status=%u us=%llu",
			  http_method_str(r->http->method), r->http->path,
			  status, (unsigned long long)us);
	}
	http_conn_respond(conn, status, headers, NULL, body, len, false);
	http_conn_unref(conn);
	json_decref(r->unacked);
	free(r);
}

void api_reply_raw_json(struct api_req *r,
			const char *body,
			size_t len,
			const char *etag)
{
	char header[96];

	if (etag != NULL && etag[0] != '\0') {
		snprintf(header, sizeof header, "ETag: \"%s\"\r\n", etag);
		req_finish(r, 200, header, body, len);
		return;
	}
	req_finish(r, 200, NULL, body, len);
}

void api_reply_sync(struct api_req *r,
		    unsigned status,
		    json_t *metadata,
		    const char *location,
		    const char *etag)
{
	char headers[1024];
	size_t hlen = 0;
	size_t len;
	char *body;

	headers[0] = '\0';
	if (location != NULL) {
		hlen += (size_t)snprintf(headers + hlen, sizeof headers - hlen,
					 "Location: %s\r\n", location);
	}
	if (etag != NULL && hlen < sizeof headers) {
		snprintf(headers + hlen, sizeof headers - hlen,
			 "ETag: \"%s\"\r\n", etag);
	}
	if (r->unacked_set && (metadata == NULL || json_is_object(metadata))) {
		if (metadata == NULL) {
			metadata = json_object();
		}
		json_object_set(metadata, "unacknowledged_members",
				r->unacked != NULL ? r->unacked : json_null());
	}
	body = api_envelope_sync(metadata, status, &len);
	json_decref(metadata);
	if (body == NULL) {
		static const char oom[] =
		    "{\"type\":\"error\",\"error\":\"out of memory\","
		    "\"error_code\":500,\"metadata\":null}";
		req_finish(r, 500, NULL, oom, sizeof oom - 1);
		return;
	}
	req_finish(r, status, headers[0] != '\0' ? headers : NULL, body, len);
	free(body);
}

static void reply_error_headers(struct api_req *r,
				unsigned status,
				const char *headers,
				const char *msg)
{
	size_t len;
	char *body;

	body = api_envelope_error(status, msg, &len);
	if (body == NULL) {
		static const char oom[] =
		    "{\"type\":\"error\",\"error\":\"out of memory\","
		    "\"error_code\":500,\"metadata\":null}";
		req_finish(r, 500, NULL, oom, sizeof oom - 1);
		return;
	}
	req_finish(r, status, headers, body, len);
	free(body);
}

void api_reply_error(struct api_req *r, unsigned status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	reply_error_headers(r, status, NULL, msg);
}

void api__reply_error_headers(struct api_req *r,
			      unsigned status,
			      const char *headers,
			      const char *msg)
{
	reply_error_headers(r, status, headers, msg);
}

void api_reply_code(struct api_req *r, int rv)
{
	unsigned status;
	const char *msg;

	switch (rv) {
	case CORRAL_ENOTFOUND:
		status = 404;
		break;
	case CORRAL_EEXIST:
	case CORRAL_ECONFLICT:
		status = 409;
		break;
	case CORRAL_EINVALID:
		status = 400;
		break;
	case CORRAL_EFORBIDDEN:
		status = 403;
		break;
	case CORRAL_EPRECONDITION:
		status = 412;
		break;
	case CORRAL_ENOLEADER:
	case CORRAL_ENOTLEADER:
	case CORRAL_EBUSY:
	/* The leader's node cannot be reached (it died, an election runs):
	 * the client may try again, as with no leader. */
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -ETIMEDOUT:
	case -EPIPE:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
		status = 503;
		break;
	default:
		status = 500;
		break;
	}
	msg = r->errmsg[0] != '\0' ? r->errmsg : corral_strerror(rv);
	reply_error_headers(r, status, NULL, msg);
}

int api_query(struct api_req *r, const char *name, char *dst, size_t size)
{
	return router_query_get(r->http->query, name, dst, size);
}
