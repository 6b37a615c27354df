/* PKI mode: when the state dir holds server.ca, client certificates that
 * chain to that CA may be trusted without being added (per
 * core.trust_ca_certificates), and DIR/ca.crl revokes certificates by
 * serial whatever the trust store says.
 *
 * Chains are verified once per distinct certificate: the verdict is cached
 * by fingerprint, so a request costs a hash lookup, not a verification. */
#ifndef CORRAL_API_PKI_H
#define CORRAL_API_PKI_H

#include <stdbool.h>

#include <openssl/x509.h>

struct pki;

enum pki_verdict {
	PKI_NONE = 0,    /* no CA configured */
	PKI_CHAINED,     /* signed by the CA, not revoked */
	PKI_NOT_CHAINED, /* not signed by the CA (or expired, or invalid) */
	PKI_REVOKED,     /* its serial is in ca.crl */
};

/* Load DIR/server.ca (one or more PEM certificates) and, when present,
 * DIR/ca.crl (PEM). Without server.ca, *@out is NULL and the call succeeds:
 * PKI mode is off. Returns 0, -ENOMEM, or CORRAL_ETLS with @errmsg filled
 * when a file is present but unreadable. */
int pki_load(const char *dir, struct pki **out, char *errmsg);

/* Free @p. Accepts NULL. */
void pki_destroy(struct pki *p);

/* The verdict for @cert, whose fingerprint is @fp (lowercase hex SHA-256).
 * PKI_NONE when @p is NULL. */
enum pki_verdict pki_check(struct pki *p, X509 *cert, const char *fp);

#endif /* CORRAL_API_PKI_H */
