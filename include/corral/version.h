/* Version of corral's daemon and client. */
#ifndef CORRAL_VERSION_H
#define CORRAL_VERSION_H

/* Release version, printed by `corral version` and sent as User-Agent. */
#define CORRAL_VERSION "0.1.0"

#endif /* CORRAL_VERSION_H */
