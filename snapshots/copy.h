/*
 * copy.h: copy a file while hashing it, the hash overlapping the copy.
 *
 * Laying a restore point down must check every byte against its manifest
 * and cost little more than the copy itself.  copy_hashed() hashes the
 * very buffers it writes (so what is laid down is what was checked), but
 * in a second thread, so that SHA-256 runs while the next chunk is read
 * and the last one written.
 */
#ifndef ROTATOR_COPY_H
#define ROTATOR_COPY_H

#include <stdint.h>

#define COPY_HEX_LEN 64

/*
 * Read IN to its end, writing every byte to OUT (or nowhere when OUT is
 * -1), and put the SHA-256 of what was read, in lowercase hex, into HEX.
 * Returns the number of bytes, or -1 with errno set.
 */
int64_t copy_hashed(int in, int out, char hex[COPY_HEX_LEN + 1]);

#endif
