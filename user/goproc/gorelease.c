#include "gorelease.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disasm.h"

/* schedinit is long: a few hundred RIP-relative references. */
#define MAX_REFS 2048

/* Longest version string believed (experiment lists included). */
#define MAX_VERSION 128

/* The module info's opening delimiter (cmd/go's modload infoStart). */
static const char modinfo_start[16] = "0w\xaf\x0c\x92t\b\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6";

static bool looks_like_version(const char *s, size_t len)
{
	if (len < 5 || len > MAX_VERSION || strncmp(s, "go1.", 4) != 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isprint((unsigned char)s[i]))
			return false;
	return true;
}

static bool looks_like_modinfo(const char *s, size_t len)
{
	return len >= sizeof(modinfo_start) && memcmp(s, modinfo_start, sizeof(modinfo_start)) == 0;
}

/*
 * The bytes of the Go string variable at vaddr: a pointer and a length that the linker wrote into
 * the file (the runtime never changes these two), pointing at file-backed bytes.
 */
static const char *string_var(const struct elfbin *eb, uint64_t vaddr, size_t *len)
{
	uint64_t hdr[2];
	size_t avail;
	if (elfbin_read_vaddr(eb, vaddr, hdr, sizeof(hdr)) != 0 || !hdr[1])
		return NULL;
	const char *s = elfbin_vaddr_ptr(eb, hdr[0], &avail, NULL);
	if (!s || hdr[1] > avail)
		return NULL;
	*len = (size_t)hdr[1];
	return s;
}

/*
 * A runtime string variable: by its symbol, else among the variables runtime.schedinit uses.
 * schedinit refers to buildVersion and modinfo (to keep the linker from dropping them: see
 * runtime/proc.go) by the address of their pointer or length word; ok tells the one wanted.
 */
static const char *runtime_string(const struct elfbin *eb, const struct gosym *sym,
				  const char *name, bool (*ok)(const char *, size_t), size_t *len,
				  const char **source)
{
	uint64_t vaddr, entry, end;
	const char *s;
	if (elfbin_symbol(eb, name, &vaddr, NULL) == 0) {
		*source = name;
		s = string_var(eb, vaddr, len);
		return s && ok(s, *len) ? s : NULL;
	}
	struct rip_ref *refs = calloc(MAX_REFS, sizeof(*refs));
	int n = 0;
	if (refs && sym && gosym_func(sym, "runtime.schedinit", &entry, &end) == 0)
		n = disasm_rip_refs(eb, entry, end, refs, MAX_REFS);
	*source = "runtime.schedinit";
	s = NULL;
	for (int i = 0; i < n && !s; i++) {
		for (uint64_t word = 0; word < 2 && !s; word++) {
			s = string_var(eb, refs[i].target - 8 * word, len);
			if (s && !ok(s, *len))
				s = NULL;
		}
	}
	free(refs);
	return s;
}

/* The len bytes at s as a C string in buf ("" unless it fits): 0, -ENOENT for none, or -ENOSPC. */
static int copy_out(const char *s, size_t len, char *buf, size_t size)
{
	if (size)
		buf[0] = '\0';
	if (!s)
		return -ENOENT;
	if (len >= size)
		return -ENOSPC;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

int gorelease_version(const struct elfbin *eb, const struct gosym *sym, char *buf, size_t len,
		      const char **source)
{
	size_t sl = 0;
	const char *s = elfbin_go_version(eb, &sl);
	*source = "build info";
	if (!s)
		s = runtime_string(eb, sym, "runtime.buildVersion", looks_like_version, &sl,
				   source);
	return copy_out(s, sl, buf, len);
}

int gorelease_goexperiment(const struct elfbin *eb, const struct gosym *sym, char *buf, size_t len)
{
	static const char key[] = "\nbuild\tGOEXPERIMENT=";
	const char *source;
	size_t n;
	const char *info = elfbin_go_modinfo(eb, &n);
	if (!info)
		info = runtime_string(eb, sym, "runtime.modinfo", looks_like_modinfo, &n, &source);
	const char *at = info ? memmem(info, n, key, sizeof(key) - 1) : NULL;
	if (!at)
		return copy_out(NULL, 0, buf, len);
	const char *val = at + sizeof(key) - 1, *stop = info + n;
	const char *nl = memchr(val, '\n', (size_t)(stop - val));
	return copy_out(val, (size_t)((nl ? nl : stop) - val), buf, len);
}

/* Parses the decimal number at *p (no sign, no spaces), advancing *p; -1 when there is none. */
static long number(const char **p)
{
	long v = 0;
	const char *s = *p;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s) && v < 1000000; s++)
		v = 10 * v + (*s - '0');
	*p = s;
	return v;
}

/* After the release number: the end, or the experiments (" X:", "-X:" from Go 1.26). */
static bool release_ends(const char *p)
{
	return *p == '\0' || strncmp(p, " X:", 3) == 0 || strncmp(p, "-X:", 3) == 0;
}

int gorelease_minor(const char *version)
{
	const char *p = version + 4;
	long minor = strncmp(version, "go1.", 4) == 0 ? number(&p) : -1;
	return minor > 0 ? (int)minor : 0;
}

int gorelease_patch(const char *version)
{
	const char *p = version + 4;
	if (!gorelease_minor(version) || number(&p) < 0)
		return -1;
	if (release_ends(p))
		return 0;
	if (*p++ != '.')
		return -1;
	long patch = number(&p);
	return patch >= 0 && release_ends(p) ? (int)patch : -1;
}

const char *gorelease_experiments(const char *version)
{
	const char *x = strstr(version, "X:");
	return x && x > version && (x[-1] == ' ' || x[-1] == '-') ? x + 2 : "";
}
