/*
 * The SVG picture of gcout.h: the heap over time (at each cycle's start, at mark termination and
 * live after it, with the goal as a dashed step line), and under it one lane each for the GC's
 * pauses, its concurrent marking and the other stop-the-worlds, drawn to scale, then a tick per
 * cycle (taller when forced). The longest pauses (the run's p99 and above) also get a band across
 * the heap, so they stand out. The goals other settings would set, where they fit, are dotted
 * lines beside the observed goal. Every cycle is a <g class="gc-cycle"> with a <title>: a browser
 * shows its gctrace line on hover.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gcout.h"

#define W     1100.0
#define H     540.0
#define LEFT  110.0
#define RIGHT 20.0
#define TOP   60.0
#define PW    (W - LEFT - RIGHT)
#define PH    300.0 /* the heap plot */
#define LANE  14.0  /* height of a lane */
#define GAP   4.0
#define LANE0 (TOP + PH + 8)
#define TICKS (LANE0 + 3 * (LANE + GAP))
#define MIB   1048576.0

enum lane { LANE_PAUSE, LANE_MARK, LANE_OTHER };

struct plot {
	FILE *f;
	int64_t t0, t1;	 /* CLOCK_MONOTONIC ns at the left and right edges */
	int64_t base;	 /* times are labelled from here */
	double ymax;	 /* bytes at the top; 0 when heap sizes are unknown */
	int64_t long_ns; /* pauses this long get a band across the heap */
};

static double px(const struct plot *p, int64_t ns)
{
	return LEFT + PW * (double)(ns - p->t0) / (double)(p->t1 - p->t0);
}

static double py(const struct plot *p, int64_t bytes)
{
	return TOP + PH - PH * (double)bytes / p->ymax;
}

/* A width on the time axis; at least a pixel, so the shortest pause still shows. */
static double pw(const struct plot *p, int64_t ns)
{
	double w = PW * (double)ns / (double)(p->t1 - p->t0);

	return w < 1.0 ? 1.0 : w;
}

static double lane_y(enum lane l)
{
	return LANE0 + (double)l * (LANE + GAP);
}

static void escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			/* XML 1.0 has no place for control characters, even escaped. */
			fputc((unsigned char)*s < 0x20 ? '?' : *s, f);
		}
	}
}

static bool timed(const struct gc_cycle *c)
{
	return c->start_ns != GC_UNKNOWN && c->sweep_term_ns != GC_UNKNOWN &&
	       c->mark_ns != GC_UNKNOWN && c->mark_term_ns != GC_UNKNOWN;
}

static int64_t mark_start(const struct gc_cycle *c)
{
	return c->start_ns + c->sweep_term_ns;
}

static int64_t mark_term(const struct gc_cycle *c)
{
	return mark_start(c) + c->mark_ns;
}

static int64_t cycle_end(const struct gc_cycle *c)
{
	return mark_term(c) + c->mark_term_ns;
}

/* The time span and heap scale: every timed cycle and every other stop fits. */
static void frame(struct plot *p, const struct gc_report *r)
{
	const struct gcdecode *d = r->d;

	p->t0 = INT64_MAX;
	p->t1 = INT64_MIN;
	for (size_t i = 0; i < d->ncycles; i++) {
		const struct gc_cycle *c = &d->cycles[i];
		int64_t vals[] = {c->heap0, c->heap1, c->heap2, c->heap_goal};

		if (!timed(c))
			continue;
		p->t0 = c->start_ns < p->t0 ? c->start_ns : p->t0;
		p->t1 = cycle_end(c) > p->t1 ? cycle_end(c) : p->t1;
		for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++)
			if ((double)vals[k] > p->ymax)
				p->ymax = (double)vals[k];
	}
	for (size_t i = 0; r->tune && p->ymax > 0 && i < r->tune->noptions; i++)
		if (r->tune->options[i].fits && r->tune->options[i].goal > p->ymax)
			p->ymax = r->tune->options[i].goal;
	for (size_t i = 0; i < d->nstws; i++) {
		const struct gc_stw *s = &d->stws[i];

		p->t0 = s->start_ns < p->t0 ? s->start_ns : p->t0;
		p->t1 = s->start_ns + s->duration_ns > p->t1 ? s->start_ns + s->duration_ns : p->t1;
	}
	if (p->t0 >= p->t1) {
		p->t0 = r->time_base;
		p->t1 = r->time_base + 1000000000;
	}
	p->ymax *= 1.1;
	p->long_ns = r->sum->pause_p99 > 0 ? r->sum->pause_p99 : INT64_MAX;
}

/* A round step (1, 2 or 5 times a power of ten) giving about ten ticks over span. */
static double tick_step(double span)
{
	double raw = span / 10, mag = pow(10, floor(log10(raw))), norm = raw / mag;

	return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

static void time_axis(const struct plot *p, const struct gc_report *r)
{
	double from = (double)(p->t0 - p->base) / 1e9, to = (double)(p->t1 - p->base) / 1e9;
	double step = tick_step(to - from);
	int decimals = step >= 1 ? 0 : (int)-floor(log10(step));

	for (double at = ceil(from / step) * step; at <= to; at += step) {
		double x = LEFT + PW * (at - from) / (to - from);

		fprintf(p->f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*fs</text>\n",
			x, TOP, x, TICKS + 14, x, TICKS + 30, decimals, at);
	}
	fprintf(p->f,
		"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">time since the %s</text>\n",
		LEFT + PW / 2, TICKS + 50,
		r->time_base_is_program ? "program started" : "recording started");
}

static void heap_axis(const struct plot *p)
{
	fprintf(p->f,
		"<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" "
		"stroke=\"#999\"/>\n",
		LEFT, TOP, PW, PH);
	if (p->ymax <= 0) {
		fprintf(
		    p->f,
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#666\">heap sizes "
		    "unknown: the runtime's records are unreadable</text>\n",
		    LEFT + PW / 2, TOP + PH / 2);
		return;
	}
	for (int k = 0; k <= 5; k++) {
		double bytes = p->ymax / 1.1 * k / 5, y = py(p, (int64_t)bytes);

		fprintf(p->f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f MiB</text>\n",
			LEFT, y, LEFT + PW, y, LEFT - 6, y + 4, bytes / MIB);
	}
}

static void lanes(const struct plot *p)
{
	static const char *const names[] = {"GC pauses", "marking", "other stops"};

	for (int l = LANE_PAUSE; l <= LANE_OTHER; l++)
		fprintf(
		    p->f,
		    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f4f4f4\"/>"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		    LEFT, lane_y(l), PW, LANE, LEFT - 6, lane_y(l) + LANE - 3, names[l]);
	fprintf(p->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">cycles</text>\n", LEFT - 6,
		TICKS + 11);
}

/*
 * The heap as gctrace sees it: at GC start, at mark termination, live after. The goal a cycle
 * aims at is set when the one before ends, so its step rises there.
 */
static void heap_lines(const struct plot *p, const struct gcdecode *d)
{
	bool first = true;

	if (p->ymax <= 0)
		return;
	fputs("<path class=\"heap-goal\" fill=\"none\" stroke=\"#e69f00\" stroke-width=\"1.5\" "
	      "stroke-dasharray=\"6 3\" d=\"",
	      p->f);
	for (size_t i = 0; i < d->ncycles; i++) {
		const struct gc_cycle *c = &d->cycles[i];

		if (!timed(c) || c->heap_goal == GC_UNKNOWN)
			continue;
		if (first)
			fprintf(p->f, "M%.1f %.1f", px(p, c->start_ns), py(p, c->heap_goal));
		else
			fprintf(p->f, " V%.1f", py(p, c->heap_goal));
		fprintf(p->f, " H%.1f", px(p, cycle_end(c)));
		first = false;
	}
	fputs("\"/>\n<path class=\"heap-live\" fill=\"none\" stroke=\"#0072b2\" "
	      "stroke-width=\"1\" d=\"",
	      p->f);
	first = true;
	for (size_t i = 0; i < d->ncycles; i++) {
		const struct gc_cycle *c = &d->cycles[i];

		if (!timed(c) || c->heap0 == GC_UNKNOWN || c->heap1 == GC_UNKNOWN ||
		    c->heap2 == GC_UNKNOWN)
			continue;
		fprintf(p->f, "%s%.1f %.1f L%.1f %.1f L%.1f %.1f", first ? "M" : " L",
			px(p, c->start_ns), py(p, c->heap0), px(p, mark_term(c)), py(p, c->heap1),
			px(p, cycle_end(c)), py(p, c->heap2));
		first = false;
	}
	fputs("\"/>\n", p->f);
}

static void cycle_title(const struct plot *p, const struct gc_cycle *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	if (!m)
		return;
	gcout_cycle(m, c, p->base);
	fclose(m);
	if (text && len)
		text[len - 1] = '\0'; /* the newline */
	fputs("<title>", p->f);
	escaped(p->f, text ? text : "");
	fputs("</title>", p->f);
	free(text);
}

static void rect(const struct plot *p, int64_t at, int64_t ns, double y, double h, const char *fill)
{
	fprintf(p->f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"/>",
		px(p, at), y, pw(p, ns), h, fill);
}

static void pause(const struct plot *p, int64_t at, int64_t ns)
{
	if (ns >= p->long_ns)
		fprintf(p->f,
			"<rect class=\"long-pause\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" "
			"height=\"%.1f\" fill=\"#d55e00\" opacity=\"0.25\"/>",
			px(p, at), TOP, pw(p, ns), PH);
	rect(p, at, ns, lane_y(LANE_PAUSE), LANE, "#d55e00");
}

static void cycles(const struct plot *p, const struct gcdecode *d)
{
	for (size_t i = 0; i < d->ncycles; i++) {
		const struct gc_cycle *c = &d->cycles[i];
		bool forced = c->forced == 1;

		fprintf(p->f, "<g class=\"gc-cycle%s\" data-cycle=\"%" PRId64 "\">",
			forced ? " forced" : "", c->cycle);
		cycle_title(p, c);
		if (timed(c)) {
			rect(p, mark_start(c), c->mark_ns, lane_y(LANE_MARK), LANE, "#56b4e9");
			pause(p, c->start_ns, c->sweep_term_ns);
			pause(p, mark_term(c), c->mark_term_ns);
			fprintf(
			    p->f,
			    "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"%s\" "
			    "stroke-width=\"%s\"/>",
			    px(p, c->start_ns), TICKS + (forced ? 0 : 7), px(p, c->start_ns),
			    TICKS + LANE, forced ? "#cc79a7" : "#555", forced ? "2" : "1");
		}
		fputs("</g>\n", p->f);
	}
}

static void other_stws(const struct plot *p, const struct gcdecode *d)
{
	for (size_t i = 0; i < d->nstws; i++) {
		const struct gc_stw *s = &d->stws[i];
		char ms[24];

		gcout_ms(ms, sizeof(ms), s->duration_ns);
		fprintf(p->f, "<g class=\"other-stw\"><title>stop-the-world @%.3fs: %s ms, ",
			(double)(s->start_ns - p->base) / 1e9, ms);
		escaped(p->f, s->reason);
		fputs(" (not GC)</title>", p->f);
		rect(p, s->start_ns, s->duration_ns, lane_y(LANE_OTHER), LANE, "#777");
		fputs("</g>\n", p->f);
	}
}

/* What the goal would be under each setting that fits, labelled at the right. */
static void predicted_goals(const struct plot *p, const struct gc_tuning *t)
{
	for (size_t i = 0; t && p->ymax > 0 && i < t->noptions; i++) {
		const struct gc_option *o = &t->options[i];
		char name[64];

		if (!o->fits)
			continue;
		gctune_setting(name, sizeof(name), o);
		fprintf(p->f,
			"<g class=\"predicted-goal\"><title>%s: predicted goal %.1f MiB</title>"
			"<path fill=\"none\" stroke=\"#999\" stroke-width=\"1\" "
			"stroke-dasharray=\"1 3\" d=\"M%.1f %.1f H%.1f\"/>"
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#777\" "
			"font-size=\"10\">%s</text></g>\n",
			name, o->goal / MIB, LEFT, py(p, (int64_t)o->goal), LEFT + PW,
			LEFT + PW - 2, py(p, (int64_t)o->goal) - 2, name);
	}
}

static void heading(const struct plot *p, const struct gc_report *r)
{
	const struct gc_summary *s = r->sum;
	char p50[24], p99[24], max[24], stw[24];

	gcout_ms(p50, sizeof(p50), s->pause_p50);
	gcout_ms(p99, sizeof(p99), s->pause_p99);
	gcout_ms(max, sizeof(max), s->pause_max);
	gcout_ms(stw, sizeof(stw), s->stw_ns);
	fprintf(p->f, "<text x=\"%.1f\" y=\"24\" font-size=\"16\" font-weight=\"bold\">", LEFT);
	escaped(p->f, r->program);
	fprintf(p->f, " (pid %d, ", r->pid);
	escaped(p->f, r->go_version);
	fprintf(p->f,
		"): %zu GC cycles, %zu forced, %.1f/s</text>\n<text x=\"%.1f\" y=\"44\">GC pauses "
		"p50 %s ms, p99 %s ms, max %s ms; stop-the-world %s ms in total, %.2f%% of wall "
		"time; %zu other stops</text>\n",
		s->cycles, s->forced, s->cycles_per_sec, LEFT, p50, p99, max, stw,
		100.0 * s->stw_share, s->other_stws);
}

static void legend(const struct plot *p)
{
	static const struct {
		const char *color, *label;
	} items[] = {
	    {"#0072b2", "heap (at GC start, mark termination, live)"},
	    {"#e69f00", "goal"},
	    {"#999", "predicted"},
	    {"#d55e00", "GC pause (band: p99 or longer)"},
	    {"#56b4e9", "marking"},
	    {"#cc79a7", "forced cycle"},
	    {"#777", "other stop"},
	};
	double x = LEFT;

	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
		fprintf(p->f,
			"<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
			"<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
			x, H - 26, items[i].color, x + 16, H - 16, items[i].label);
		x += 16 + 6.5 * (double)strlen(items[i].label) + 18;
	}
}

int gcout_svg(const struct gc_report *r, const char *path, char *err, size_t errlen)
{
	struct plot p = {.base = r->time_base};
	int rc = 0;

	p.f = fopen(path, "w");
	if (!p.f) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -errno;
	}
	frame(&p, r);
	fprintf(p.f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		W, H, W, H);
	heading(&p, r);
	heap_axis(&p);
	lanes(&p);
	time_axis(&p, r);
	other_stws(&p, r->d);
	cycles(&p, r->d);
	predicted_goals(&p, r->tune);
	heap_lines(&p, r->d);
	legend(&p);
	fputs("</svg>\n", p.f);
	if (ferror(p.f))
		rc = -EIO;
	if (fclose(p.f) != 0 && !rc)
		rc = -errno;
	if (rc)
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
	return rc;
}
