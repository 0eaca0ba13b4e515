/* sign.c — `m64c sign`: a publisher's signature over a finished bundle (formats/sign). */
#include <stdio.h>

#include "compiler_internal.h"
#include "m64_sign.h"

int m64c_sign(const char *bundle, const char *output, const char *keyfile, int progress, m64_err *e) {
  m64_pubkey k;
  const char *out = output ? output : bundle;
  m64c_bar bar;
  m64c_bar_init(&bar, progress); /* the check of every layer's hash before signing */
  int rc = m64_sign_bundle_progress(bundle, out, keyfile, &k, m64c_track_temp_file, m64c_bar_cb, &bar, e);
  m64c_bar_done(&bar);
  if (!rc && progress) {
    char fp[M64_SIGN_FINGERPRINT_CHARS];
    m64_sign_fingerprint(k.key, fp);
    fprintf(stderr, "m64c: signed %s as %s (%s)\n", out, k.name[0] ? k.name : "(unnamed key)", fp);
  }
  return rc;
}
