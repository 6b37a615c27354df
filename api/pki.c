#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <corral/err.h>

#include "pki.h"

/* Verdicts cached by fingerprint; a full table is simply cleared, since a
 * re-verification only costs one chain check. */
#define PKI_CACHE_SIZE 1024

struct pki_entry {
	char fp[65];
	enum pki_verdict verdict;
};

struct pki {
	X509_STORE *store; /* owned */
	bool have_crl;
	struct pki_entry cache[PKI_CACHE_SIZE];
	unsigned cached;
};

static int load_cas(struct pki *p, const char *path, char *errmsg)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	unsigned n = 0;

	if (f == NULL) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "open %s: %s", path,
			    strerror(errno));
		return CORRAL_ETLS;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(p->store, x) != 1) {
			X509_free(x);
			fclose(f);
			corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
				    "X509_STORE_add_cert(%s) failed", path);
			return CORRAL_ETLS;
		}
		X509_free(x);
		n++;
	}
	ERR_clear_error(); /* the end of the file reads as an error */
	fclose(f);
	if (n == 0) {
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "%s holds no PEM certificate", path);
		return CORRAL_ETLS;
	}
	return 0;
}

static int load_crl(struct pki *p, const char *path, char *errmsg)
{
	FILE *f = fopen(path, "r");
	X509_CRL *crl;

	if (f == NULL) {
		if (errno == ENOENT) {
			return 0;
		}
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "open %s: %s", path,
			    strerror(errno));
		return CORRAL_ETLS;
	}
	crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	fclose(f);
	if (crl == NULL) {
		ERR_clear_error();
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE, "%s holds no PEM CRL",
			    path);
		return CORRAL_ETLS;
	}
	if (X509_STORE_add_crl(p->store, crl) != 1) {
		X509_CRL_free(crl);
		corral_errf(errmsg, CORRAL_ERRMSG_SIZE,
			    "X509_STORE_add_crl(%s) failed", path);
		return CORRAL_ETLS;
	}
	X509_CRL_free(crl);
	p->have_crl = true;
	return 0;
}

int pki_load(const char *dir, struct pki **out, char *errmsg)
{
	char path[4200];
	struct pki *p;
	int rv;

	*out = NULL;
	snprintf(path, sizeof path, "%s/server.ca", dir);
	if (access(path, F_OK) != 0) {
		return 0;
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) {
		return -ENOMEM;
	}
	p->store = X509_STORE_new();
	if (p->store == NULL) {
		free(p);
		return -ENOMEM;
	}
	rv = load_cas(p, path, errmsg);
	if (rv == 0) {
		snprintf(path, sizeof path, "%s/ca.crl", dir);
		rv = load_crl(p, path, errmsg);
	}
	if (rv != 0) {
		pki_destroy(p);
		return rv;
	}
	if (p->have_crl) {
		X509_STORE_set_flags(p->store, X509_V_FLAG_CRL_CHECK);
	}
	*out = p;
	return 0;
}

void pki_destroy(struct pki *p)
{
	if (p == NULL) {
		return;
	}
	X509_STORE_free(p->store);
	free(p);
}

static enum pki_verdict verify(struct pki *p, X509 *cert)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	enum pki_verdict v = PKI_NOT_CHAINED;
	int err;

	if (ctx == NULL) {
		return PKI_NOT_CHAINED; /* fail closed */
	}
	if (X509_STORE_CTX_init(ctx, p->store, cert, NULL) == 1 &&
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) == 1) {
		if (X509_verify_cert(ctx) == 1) {
			v = PKI_CHAINED;
		} else {
			err = X509_STORE_CTX_get_error(ctx);
			v = err == X509_V_ERR_CERT_REVOKED ? PKI_REVOKED
							   : PKI_NOT_CHAINED;
		}
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return v;
}

enum pki_verdict pki_check(struct pki *p, X509 *cert, const char *fp)
{
	enum pki_verdict v;
	unsigned i;

	if (p == NULL) {
		return PKI_NONE;
	}
	for (i = 0; i < p->cached; i++) {
		if (strcmp(p->cache[i].fp, fp) == 0) {
			return p->cache[i].verdict;
		}
	}
	if (cert == NULL) {
		return PKI_NOT_CHAINED;
	}
	v = verify(p, cert);
	if (p->cached == PKI_CACHE_SIZE) {
		p->cached = 0;
	}
	snprintf(p->cache[p->cached].fp, sizeof p->cache[p->cached].fp, "%s",
		 fp);
	p->cache[p->cached].verdict = v;
	p->cached++;
	return v;
}
