#include "leakout.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gostack.h"
#include "pprof.h"

/*
 * Frames of one stack once its inlined calls are unfolded: the probe keeps up to HS_MAX_FRAMES
 * PCs and each may stand for several inlined frames, so four per PC is allowed (frames_of cuts
 * the outermost beyond that). Each array of them is about 132 KB of stack.
 */
#define UNFOLDED_FRAMES (HS_MAX_FRAMES * 4)
#define TEXT_FRAMES	12
#define THIN_SHOWN	5
#define STOPPED_SHOWN	5

static const char *const age_names[LEAKS_AGE_BUCKETS] = {
    "0-1", "2-3", "4-7", "8-15", "16-31", "32-63", "64+", "before attach",
};

/* The frames of a stack as the profile shows them, innermost first. */
static int frames_of(struct heapprof *h, uint32_t stack, struct hs_frame *out)
{
	const struct heap_stack *st = &h->agg->stacks[stack];
	uint64_t *pcs = malloc((st->nframes ? st->nframes : 1) * sizeof(*pcs));
	uint32_t npcs = pcs ? gostack_shown(h->t, st->pcs, st->nframes, pcs) : 0;
	int n = 0;

	for (uint32_t k = 0; k < npcs && n < UNFOLDED_FRAMES; k++) {
		int got = gostack_frames(h->t, pcs[k], out + n, UNFOLDED_FRAMES - n);

		if (got > 0)
			n += got;
		else
			out[n++] = (struct hs_frame){.function = "?", .file = ""};
	}
	free(pcs);
	return n;
}

static const char *base(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static const char *size_str(double bytes, char *buf, size_t len)
{
	if (fabs(bytes) >= 1048576)
		snprintf(buf, len, "%.1f MiB", bytes / 1048576);
	else if (fabs(bytes) >= 1024)
		snprintf(buf, len, "%.1f KiB", bytes / 1024);
	else
		snprintf(buf, len, "%.0f B", bytes);
	return buf;
}

/* "main.leak (main.go:61)": the leaf frame, which names the site. */
static const char *site_str(struct heapprof *h, uint32_t stack, char *buf, size_t len)
{
	struct hs_frame f[UNFOLDED_FRAMES];
	int n = frames_of(h, stack, f);

	if (!n)
		snprintf(buf, len, "?");
	else if (f[0].line)
		snprintf(buf, len, "%s (%s:%u)", f[0].function, base(f[0].file), f[0].line);
	else
		snprintf(buf, len, "%s", f[0].function);
	return buf;
}

/*
 * "main.leak (main.go:61)", then the pprof labels its goroutines had where they had any:
 * "main.handle (main.go:59) {endpoint=/store, tenant=alpha}".
 */
static const char *site_labels_str(struct heapprof *h, const struct leak_site *s, char *buf,
				   size_t len)
{
	const struct label_set *set =
	    h->agg->labels ? golabels_set(h->agg->labels, s->labels) : NULL;
	size_t at;

	site_str(h, s->stack, buf, len);
	for (size_t i = 0; set && i < set->n && (at = strlen(buf)) + 1 < len; i++)
		snprintf(buf + at, len - at, "%s%s=%s%s", i ? ", " : " {", set->pairs[i].key,
			 set->pairs[i].value, i + 1 == set->n ? "}" : "");
	return buf;
}

static const char *verdict(const struct leak_report *r, char *buf, size_t len)
{
	if (r->ngrowing)
		snprintf(buf, len, "%zu leak candidate%s over %" PRId64 " GC cycles (%.1fs)",
			 r->ngrowing, r->ngrowing == 1 ? "" : "s", r->cycles, r->secs);
	else if (r->thin)
		snprintf(
		    buf, len,
		    "no verdict, evidence thin: %" PRIu64 " samples over %" PRId64
		    " GC cycles in %.1fs (a verdict needs %d cycles and %d samples); record for "
		    "longer",
		    r->samples, r->cycles, r->secs, LEAKS_MIN_POINTS - 1, LEAKS_MIN_SAMPLES);
	else if (r->nthin)
		snprintf(buf, len,
			 "no leak candidates yet, evidence thin: %zu site%s may be growing, from "
			 "%" PRIu64 " samples over %" PRId64
			 " GC cycles (%.1fs); record for longer",
			 r->nthin, r->nthin == 1 ? "" : "s", r->samples, r->cycles, r->secs);
	else
		snprintf(buf, len,
			 "no leak candidates: no allocation site kept growing and kept its old "
			 "objects over %" PRId64 " GC cycles (%.1fs, %" PRIu64 " samples)",
			 r->cycles, r->secs, r->samples);
	return buf;
}

static void print_ages(FILE *f, const struct leak_site *s)
{
	double total = 0;

	for (int b = 0; b < LEAKS_AGE_BUCKETS; b++)
		total += s->age_bytes[b];
	if (total <= 0)
		return;
	fprintf(f, "   in use by age in GC cycles:");
	for (int b = 0; b < LEAKS_AGE_BUCKETS; b++)
		if (s->age_bytes[b] > 0)
			fprintf(f, " %s %.0f%%", age_names[b], 100 * s->age_bytes[b] / total);
	fprintf(f, "\n");
}

static void print_candidate(FILE *f, const struct leak_site *s, int rank, struct heapprof *h)
{
	struct hs_frame fr[UNFOLDED_FRAMES];
	char site[512], a[32], b[32], c[32];
	int n = frames_of(h, s->stack, fr);

	fprintf(f, "\n#%d %s  confidence %.2f\n", rank, site_labels_str(h, s, site, sizeof(site)),
		s->v.confidence);
	fprintf(f, "   grows %s/s (%s per GC cycle); in use %s; %" PRIu64 " samples\n",
		size_str(s->v.per_sec, a, sizeof(a)), size_str(s->v.per_cycle, b, sizeof(b)),
		size_str(s->inuse_bytes, c, sizeof(c)), s->samples);
	if (s->before_attach)
		fprintf(f, "   oldest object from before attach (over %" PRId64 " cycles, %.1fs)\n",
			s->oldest_age_cycles, s->oldest_age_secs);
	else if (s->oldest_age_cycles >= 0)
		fprintf(f, "   oldest object %" PRId64 " GC cycles (%.1fs) old\n",
			s->oldest_age_cycles, s->oldest_age_secs);
	print_ages(f, s);
	for (int i = 0; i < n && i < TEXT_FRAMES; i++)
		fprintf(f, "     %s  %s:%u\n", fr[i].function, fr[i].file, fr[i].line);
	if (n > TEXT_FRAMES)
		fprintf(f, "     ... %d more frames\n", n - TEXT_FRAMES);
}

void leakout_text(FILE *f, const struct leak_report *r, struct heapprof *h, int top)
{
	char line[512], site[512], a[32];
	size_t shown = 0;

	fprintf(f, "%s%s\n", verdict(r, line, sizeof(line)),
		r->ngrowing ? ", most suspicious first:" : "");
	for (size_t i = 0; i < r->nsites; i++)
		if (r->sites[i].v.kind == LEAK_GROWING && (int)i < top)
			print_candidate(f, &r->sites[i], (int)i + 1, h);
	for (size_t i = 0; i < r->nsites; i++) {
		const struct leak_site *s = &r->sites[i];

		if (s->v.kind != LEAK_STOPPED || shown++ >= STOPPED_SHOWN)
			continue;
		if (shown == 1)
			fprintf(f,
				"\nstopped growing (kept what it grew, but no longer grows; not a "
				"candidate):\n");
		fprintf(f, "  %s: grew %s, in use %s, %" PRIu64 " samples\n",
			site_labels_str(h, s, site, sizeof(site)),
			size_str(s->v.growth, a, sizeof(a)),
			size_str(s->inuse_bytes, line, sizeof(line)), s->samples);
	}
	shown = 0;
	for (size_t i = 0; i < r->nsites; i++) {
		const struct leak_site *s = &r->sites[i];

		if (s->v.kind != LEAK_THIN || shown++ >= THIN_SHOWN)
			continue;
		if (shown == 1)
			fprintf(f, "\npossible growth, evidence thin (not a candidate):\n");
		if (r->npoints < LEAKS_MIN_POINTS)
			snprintf(line, sizeof(line), "a verdict needs %d cycles",
				 LEAKS_MIN_POINTS - 1);
		else
			snprintf(line, sizeof(line),
				 "growth %.1f times its sampling error, %.0f needed", s->v.z,
				 LEAKS_Z_MIN);
		fprintf(f,
			"  %s: +%s, evidence thin: %" PRIu64 " samples over %" PRId64
			" GC cycles (%s)\n",
			site_labels_str(h, s, site, sizeof(site)),
			size_str(s->v.growth, a, sizeof(a)), s->samples, r->cycles, line);
	}
}

void leakout_brief(FILE *f, const struct leak_report *r, struct heapprof *h, int top)
{
	char line[512], a[32], b[32];

	if (!r->ngrowing) {
		fprintf(f, "  leaks: %s\n", verdict(r, line, sizeof(line)));
		return;
	}
	fprintf(f, "  leak candidates (heapspy leaks tells more):\n");
	for (size_t i = 0; i < r->nsites && (int)i < top; i++) {
		const struct leak_site *s = &r->sites[i];

		if (s->v.kind != LEAK_GROWING)
			break;
		fprintf(f, "  %10s/s  in use %10s  confidence %.2f  %s\n",
			size_str(s->v.per_sec, a, sizeof(a)),
			size_str(s->inuse_bytes, b, sizeof(b)), s->v.confidence,
			site_labels_str(h, s, line, sizeof(line)));
	}
}

/* Infinity is no JSON number: an unbounded ratio is written as null. */
static struct json_object *num(double v)
{
	char buf[64];

	if (!isfinite(v))
		return NULL;
	snprintf(buf, sizeof(buf), "%.3f", v);
	return json_object_new_double_s(v, buf);
}

static struct json_object *site_json(const struct leak_site *s, const struct leaks *l,
				     struct heapprof *h)
{
	const struct leaks_series *ser = &l->series[s->series];
	const struct label_set *set =
	    h->agg->labels ? golabels_set(h->agg->labels, s->labels) : NULL;
	struct json_object *labels = json_object_new_object();
	struct json_object *o = json_object_new_object(), *stack = json_object_new_array();
	struct json_object *frames = json_object_new_array(), *ages = json_object_new_object();
	struct json_object *timeline = json_object_new_array(), *ev = json_object_new_object();
	struct hs_frame fr[UNFOLDED_FRAMES];
	int n = frames_of(h, s->stack, fr);

	for (int i = 0; i < n; i++) {
		struct json_object *f = json_object_new_object();

		json_object_array_add(stack, json_object_new_string(fr[i].function));
		json_object_object_add(f, "function", json_object_new_string(fr[i].function));
		json_object_object_add(f, "file", json_object_new_string(fr[i].file));
		json_object_object_add(f, "line", json_object_new_int64(fr[i].line));
		json_object_array_add(frames, f);
	}
	for (int b = 0; b < LEAKS_AGE_BUCKETS; b++)
		json_object_object_add(ages, age_names[b],
				       json_object_new_int64((int64_t)s->age_bytes[b]));
	for (size_t i = 0; i < leaks_points(l); i++) {
		struct json_object *p = json_object_new_object();

		json_object_object_add(p, "cycle", json_object_new_int64(l->cycle[i]));
		json_object_object_add(p, "seconds", num(l->secs[i]));
		json_object_object_add(p, "inuse_bytes",
				       json_object_new_int64((int64_t)ser->bytes[i]));
		json_object_array_add(timeline, p);
	}
	json_object_object_add(ev, "growth_bytes", json_object_new_int64((int64_t)s->v.growth));
	json_object_object_add(ev, "growth_z", num(s->v.z));
	json_object_object_add(ev, "trend", num(s->v.trend));
	json_object_object_add(ev, "growing_intervals", json_object_new_int(s->v.steps));
	json_object_object_add(ev, "kept", num(s->v.kept));
	json_object_object_add(ev, "recent_rate_ratio", num(s->v.recent));
	json_object_object_add(ev, "recent_z", num(s->v.recent_z));

	for (size_t i = 0; set && i < set->n; i++)
		json_object_object_add(labels, set->pairs[i].key,
				       json_object_new_string(set->pairs[i].value));
	json_object_object_add(o, "stack", stack);
	json_object_object_add(o, "labels", labels);
	json_object_object_add(o, "inuse_bytes", json_object_new_int64((int64_t)s->inuse_bytes));
	json_object_object_add(o, "growth_bytes_per_second", num(s->v.per_sec));
	json_object_object_add(o, "growth_bytes_per_cycle", num(s->v.per_cycle));
	json_object_object_add(o, "samples", json_object_new_int64((int64_t)s->samples));
	json_object_object_add(o, "oldest_age_cycles", json_object_new_int64(s->oldest_age_cycles));
	json_object_object_add(o, "oldest_age_seconds", num(s->oldest_age_secs));
	json_object_object_add(o, "oldest_before_attach",
			       json_object_new_boolean(s->before_attach));
	json_object_object_add(o, "confidence", num(s->v.confidence));
	json_object_object_add(o, "frames", frames);
	json_object_object_add(o, "inuse_bytes_by_age_cycles", ages);
	json_object_object_add(o, "evidence", ev);
	json_object_object_add(o, "timeline", timeline);
	return o;
}

char *leakout_json_text(const struct leak_report *r, const struct leaks *l, struct heapprof *h,
			const struct leakout_info *info)
{
	static const char *const lists[] = {
	    [LEAK_GROWING] = "candidates", [LEAK_STOPPED] = "stopped", [LEAK_THIN] = "thin"};
	struct json_object *root = json_object_new_object();
	char line[512], *copy;
	const char *text;

	if (!root)
		return NULL;
	json_object_object_add(root, "pid", json_object_new_int(info->pid));
	json_object_object_add(root, "program", json_object_new_string(info->program));
	json_object_object_add(root, "go_version", json_object_new_string(info->go_version));
	json_object_object_add(root, "duration_seconds", num(info->secs));
	json_object_object_add(root, "sampling_rate", json_object_new_int64(info->rate));
	json_object_object_add(root, "gc_cycles", json_object_new_int64(r->cycles));
	json_object_object_add(root, "samples", json_object_new_int64((int64_t)r->samples));
	json_object_object_add(root, "evidence_thin",
			       json_object_new_boolean(!r->ngrowing && (r->thin || r->nthin)));
	json_object_object_add(root, "verdict",
			       json_object_new_string(verdict(r, line, sizeof(line))));
	if (info->profile) {
		json_object_object_add(root, "old_objects_profile",
				       json_object_new_string(info->profile));
		json_object_object_add(root, "old_objects_min_age_cycles",
				       json_object_new_int64(info->min_age));
	}
	for (int k = LEAK_GROWING; k <= LEAK_THIN; k++) {
		struct json_object *arr = json_object_new_array();

		for (size_t i = 0; i < r->nsites; i++)
			if (r->sites[i].v.kind == (enum leak_kind)k)
				json_object_array_add(arr, site_json(&r->sites[i], l, h));
		json_object_object_add(root, lists[k], arr);
	}
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							JSON_C_TO_STRING_NOSLASHESCAPE);
	copy = text ? strdup(text) : NULL;
	json_object_put(root);
	return copy;
}

int leakout_json(const char *path, const struct leak_report *r, const struct leaks *l,
		 struct heapprof *h, const struct leakout_info *info, char *err, size_t errlen)
{
	char *text = leakout_json_text(r, l, h, info);
	int rc = text ? pprof_write_file(path, text, strlen(text)) : -ENOMEM;

	if (rc)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	free(text);
	return rc;
}
