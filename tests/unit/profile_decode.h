/* Profiles read back as a reader sees them: gzipped profile.proto, decoded by protobuf-c. */
#ifndef HEAPSPY_PROFILE_DECODE_H
#define HEAPSPY_PROFILE_DECODE_H

#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "pprof.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile pb_profile;

static uint8_t *gunzip(const uint8_t *in, size_t inlen, size_t *outlen)
{
	z_stream z = {0};
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return NULL;
	size_t cap = 4096, len = 0;
	uint8_t *out = malloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)inlen;
	int rc = Z_OK;
	while (out && rc == Z_OK) {
		if (len == cap) {
			uint8_t *grown = realloc(out, cap * 2);
			if (!grown) {
				free(out);
				out = NULL;
				break;
			}
			out = grown;
			cap *= 2;
		}
		z.next_out = out + len;
		z.avail_out = (uInt)(cap - len);
		rc = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
	}
	inflateEnd(&z);
	if (rc != Z_STREAM_END || z.avail_in) {
		free(out);
		return NULL;
	}
	*outlen = len;
	return out;
}

/* NULL unless buf is a gzip stream holding one well-formed Profile. */
static pb_profile *decode(const uint8_t *buf, size_t len)
{
	if (len < 2 || buf[0] != 0x1f || buf[1] != 0x8b)
		return NULL;
	size_t rawlen;
	uint8_t *raw = gunzip(buf, len, &rawlen);
	if (!raw)
		return NULL;
	pb_profile *pb = perftools__profiles__profile__unpack(NULL, rawlen, raw);
	free(raw);
	return pb;
}

static pb_profile *encode_decode(const struct pprof *p)
{
	uint8_t *buf;
	size_t len;
	if (pprof_encode(p, &buf, &len) != 0)
		return NULL;
	pb_profile *pb = decode(buf, len);
	free(buf);
	return pb;
}

#endif
