/* errmsg: the one-line error messages modules hand back through (err, errlen). */
#ifndef HEAPSPY_ERRMSG_H
#define HEAPSPY_ERRMSG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Formats into err; a NULL or empty buffer means the caller wants no message. */
static inline __attribute__((format(printf, 3, 4))) void errmsg(char *err, size_t errlen,
								const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#endif
