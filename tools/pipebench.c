/*
 * pipebench: the loader's event-pipeline capacity, measured where a Go target cannot take it (its
 * probe hits top out near 450k events/s on two cores). tools/pipebench.bpf.c replays heapspy's
 * event stream from CPU 1 at a paced rate; heapspy's own consumer (evloop, heapagg_event) drains
 * it on CPU 0. One JSON object per rate on stdout, a table on stderr.
 *
 *   pipebench [-d seconds per rate] [-b events per test run] [-r ring buffer KiB] [-R r1,r2,...]
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "heapagg.h"
#include "proc.h"
#include "pipebench.skel.h" /* after heapagg.h: it needs heapspy.h's types */

struct consumer {
	struct heapagg agg;
	uint64_t events;
	int error;
};

/* session.c's on_heap_event, plus a count. */
static int on_event(void *ctx, void *data, size_t len)
{
	struct consumer *c = ctx;
	int rc = heapagg_event(&c->agg, data, len);

	c->events++;
	if (rc && !c->error)
		c->error = rc;
	return 0;
}

struct producer {
	int prog_fd;
	__u32 batch;
	double rate, secs;	      /* events/s (0: as fast as test runs go), for secs */
	uint64_t window_ns;	      /* how long the last phase took */
	atomic_int phase, done, quit; /* phases asked for, and finished */
};

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000),
			      .tv_nsec = (long)(ns % 1000000000)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *produce(void *arg)
{
	struct producer *p = arg;

	if (pin(1))
		fprintf(stderr, "pipebench: cannot pin the producer to CPU 1\n");
	while (!atomic_load(&p->quit)) {
		int phase = atomic_load(&p->phase);
		uint64_t t0 = evloop_now_ns(), sent = 0;

		if (phase == atomic_load(&p->done)) {
			sleep_until(t0 + 100000);
			continue;
		}
		/*
		 * The producer times its phase: a consumer that falls behind does not return from
		 * ring_buffer__consume while events keep coming, so it could not stop the phase.
		 */
		while (evloop_now_ns() - t0 < (uint64_t)(p->secs * 1e9) && !atomic_load(&p->quit)) {
			LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = &p->batch,
				    .ctx_size_in = sizeof(p->batch));

			/* Paced from the phase's start, so a late batch is caught up, not skipped.
			 */
			if (p->rate > 0)
				sleep_until(t0 + (uint64_t)((double)sent * 1e9 / p->rate));
			if (bpf_prog_test_run_opts(p->prog_fd, &o)) {
				perror("pipebench: BPF_PROG_TEST_RUN");
				exit(1);
			}
			sent += p->batch;
		}
		p->window_ns = evloop_now_ns() - t0;
		atomic_store(&p->done, phase);
	}
	return NULL;
}

static double cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* Go-like stacks: a few shared outer frames (goexit, main), a tail of 10-40 drawn from a pool. */
static void fill_stacks(struct pipebench_bpf__bss *b)
{
	static const __u64 classes[] = {16, 24, 32, 48, 64, 80, 96, 128, 192, 256, 512, 1024, 4096};
	size_t nstacks = sizeof(b->stack_depth) / sizeof(b->stack_depth[0]);
	unsigned seed = 1;

	for (size_t i = 0; i < nstacks; i++) {
		__u32 depth = 10 + (unsigned)rand_r(&seed) % 31;

		b->stack_depth[i] = depth;
		b->stack_size[i] =
		    classes[(unsigned)rand_r(&seed) % (sizeof(classes) / sizeof(classes[0]))];
		for (__u32 j = 0; j < depth; j++)
			b->stack_pcs[i][j] =
			    j + 3 >= depth ? 0x401000 + (depth - j) * 0x40
					   : 0x410000 + ((unsigned)rand_r(&seed) % 2048) * 0x1c3;
	}
}

static double rates[16] = {250e3, 500e3, 1e6, 1.5e6, 2e6, 3e6, 0};
static int nrates = 7;

int main(int argc, char **argv)
{
	struct producer p = {.batch = 256, .secs = 3};
	struct consumer c = {0};
	struct pipebench_bpf *skel;
	double capacity = 0;
	unsigned rb_kib = 0;
	struct evloop loop;
	pthread_t thr;
	int opt, rc, self = proc_pidfd(getpid());

	while ((opt = getopt(argc, argv, "d:b:r:R:")) != -1) {
		if (opt == 'd')
			p.secs = atof(optarg);
		else if (opt == 'b')
			p.batch = (__u32)atoi(optarg);
		else if (opt == 'r')
			rb_kib = (unsigned)atoi(optarg);
		else if (opt == 'R')
			for (nrates = 0; nrates < 16 && (optarg = strtok(optarg, ","));
			     optarg = NULL)
				rates[nrates++] = atof(optarg);
		else
			return 2;
	}
	if (p.secs <= 0 || p.batch == 0 || (rb_kib & (rb_kib - 1))) {
		fprintf(stderr,
			"usage: pipebench [-d secs>0] [-b batch>0] [-r KiB, a power of two] "
			"[-R events/s,...; 0 unpaced]\n");
		return 2;
	}
	skel = pipebench_bpf__open();
	if (!skel) {
		perror("pipebench: open");
		return 1;
	}
	/* --ringbuf's override, as session.c applies it; default HS_RINGBUF_BYTES, heapspy's. */
	if (rb_kib)
		bpf_map__set_max_entries(skel->maps.events, rb_kib * 1024u);
	fill_stacks(skel->bss);
	rc = pipebench_bpf__load(skel);
	if (!rc)
		rc = evloop_init(&loop, self, 0, 100, true);
	if (!rc)
		rc = evloop_add_ringbuf(&loop, bpf_map__fd(skel->maps.events), on_event, &c);
	if (rc) {
		fprintf(stderr, "pipebench: %s (root?)\n", strerror(-rc));
		return 1;
	}
	heapagg_init(&c.agg);
	p.prog_fd = bpf_program__fd(skel->progs.produce);
	if (pthread_create(&thr, NULL, produce, &p)) {
		perror("pipebench: thread");
		return 1;
	}
	if (pin(0))
		fprintf(stderr, "pipebench: cannot pin the consumer to CPU 0\n");

	fprintf(stderr, "%9s %9s %9s %8s %10s %10s %6s %8s %5s %6s %7s\n", "target/s", "produced",
		"consumed", "lost", "consumed/s", "cons. CPU", "busy", "us/event", "sites",
		"stacks", "live");
	/*
	 * Nothing is reset between rates: heapspy runs for minutes with its tables full, so each
	 * rate starts from the previous one's steady state (~100k live objects), not a cold start.
	 */
	for (int i = 0; i < nrates; i++) {
		uint64_t prod0 = skel->bss->produced, lost0 = skel->bss->lost, ev0 = c.events;
		uint64_t prod, lost, ev;
		double cpu0 = cpu_ms(), secs, cpu;

		p.rate = rates[i];
		atomic_store(&p.phase, i + 1);
		loop.start_ns = evloop_now_ns();
		loop.duration_s = p.secs;
		if (evloop_run(&loop, NULL, NULL) != EVLOOP_DURATION)
			break;
		while (atomic_load(&p.done) != i + 1)
			sleep_until(evloop_now_ns() + 10000);
		evloop_drain(&loop);
		cpu = cpu_ms() - cpu0;
		secs = (double)p.window_ns / 1e9;
		prod = skel->bss->produced - prod0;
		lost = skel->bss->lost - lost0;
		ev = c.events - ev0;
		/* Whatever the ring buffer still held at the window's end is drained by now. */
		if (!lost && ev == prod && ev / secs > capacity)
			capacity = ev / secs;
		fprintf(stderr,
			"%9.0f %9llu %9llu %8llu %10.0f %10.0f %5.0f%% %8.3f %5zu %6zu %7zu\n",
			rates[i], (unsigned long long)prod, (unsigned long long)ev,
			(unsigned long long)lost, ev / secs, cpu, cpu / secs / 10,
			ev ? cpu * 1e3 / ev : 0, c.agg.nsites, c.agg.nstacks, c.agg.live.len);
		printf(
		    "{\"target_per_s\":%.0f,\"seconds\":%.3f,\"produced\":%llu,\"consumed\":%llu,"
		    "\"lost\":%llu,\"consumed_per_s\":%.0f,\"consumer_cpu_ms\":%.1f,"
		    "\"cpu_us_per_event\":%.4f,\"sites\":%zu,\"stacks\":%zu,\"live_objects\":%zu,"
		    "\"producer_live\":%llu,\"unmatched_frees\":%llu,\"repeated\":%llu}\n",
		    rates[i], secs, (unsigned long long)prod, (unsigned long long)ev,
		    (unsigned long long)lost, ev / secs, cpu, ev ? cpu * 1e3 / ev : 0, c.agg.nsites,
		    c.agg.nstacks, c.agg.live.len, (unsigned long long)skel->bss->live,
		    (unsigned long long)c.agg.unmatched_frees, (unsigned long long)c.agg.repeated);
		fflush(stdout);
	}
	atomic_store(&p.quit, 1);
	pthread_join(thr, NULL);
	fprintf(stderr, "capacity (most consumed/s with no loss): %.0f events/s%s\n", capacity,
		c.error ? "; the aggregator failed (out of memory)" : "");
	evloop_close(&loop);
	heapagg_free(&c.agg);
	pipebench_bpf__destroy(skel);
	return c.error ? 1 : 0;
}
