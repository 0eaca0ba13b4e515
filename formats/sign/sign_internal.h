/* sign_internal.h — shared by the sign/ sources; not part of the API. */
#ifndef M64_SIGN_INTERNAL_H
#define M64_SIGN_INTERNAL_H

#include "m64_sign.h"

int m64__sodium_ready(m64_err *e);
/* One public key line as read from path (for messages). */
int m64__parse_public(const char *text, const char *path, m64_pubkey *out, m64_err *e);
/* The secret key file: libsodium's 64-byte secret key and the public half with its name. */
int m64__read_secret(const char *path, uint8_t sk[64], m64_pubkey *pub, m64_err *e);
/* The public key file line for k under name, with its newline. */
void m64__public_line(const m64_pubkey *k, const char *name, char *out, size_t cap);

#endif
