#include "push.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_S 5
#define TIMEOUT_S	  20

struct push_item {
	char *query; /* after /ingest? */
	uint8_t *body;
	size_t len;
	struct push_item *next;
};

static void item_free(struct push_item *it)
{
	if (!it)
		return;
	free(it->query);
	free(it->body);
	free(it);
}

/* Under mu. */
static struct push_item *pop(struct pusher *p)
{
	struct push_item *it = p->head;

	if (!it)
		return NULL;
	p->head = it->next;
	if (!p->head)
		p->tail = NULL;
	p->n--;
	it->next = NULL;
	return it;
}

/* Under mu: at the front (a retry keeps its turn), or the back; the oldest goes when full. */
static void push_in(struct pusher *p, struct push_item *it, bool front)
{
	if (front) {
		it->next = p->head;
		p->head = it;
		if (!p->tail)
			p->tail = it;
	} else {
		if (p->tail)
			p->tail->next = it;
		else
			p->head = it;
		p->tail = it;
	}
	p->n++;
	while (p->n > PUSH_QUEUE) {
		item_free(pop(p));
		p->dropped++;
	}
	pthread_cond_broadcast(&p->cv);
}

/* A transfer under way gives up as soon as heapspy stops. */
static int progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		    curl_off_t ulnow)
{
	struct pusher *p = ctx;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	return __atomic_load_n(&p->quit, __ATOMIC_RELAXED);
}

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
	(void)data, (void)ctx;
	return size * n;
}

/* 1: answered 2xx; 0: worth another try; -1: refused for good (a 4xx other than 429). */
static int send_one(struct pusher *p, CURL *curl, const struct push_item *it)
{
	char url[8192];
	curl_mime *mime = curl_mime_init(curl);
	curl_mimepart *part = curl_mime_addpart(mime);
	long status = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "%s/ingest?%s", p->url, it->query);
	curl_mime_name(part, "profile");
	curl_mime_filename(part, "profile.pprof");
	curl_mime_type(part, "application/octet-stream");
	curl_mime_data(part, (const char *)it->body, it->len);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(curl, CURLOPT_MIMEPOST, NULL);
	curl_mime_free(mime);
	if (status >= 200 && status < 300)
		return 1;
	if (status >= 400 && status < 500 && status != 429)
		return -1;
	return 0;
}

static void deadline_after(struct timespec *ts, int secs)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += secs;
}

static void *run(void *arg)
{
	struct pusher *p = arg;
	CURL *curl = curl_easy_init();
	int backoff = 0;

	if (curl) {
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)TIMEOUT_S);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(curl, CURLOPT_USERAGENT, "heapspy");
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, p);
	}
	pthread_mutex_lock(&p->mu);
	while (!p->quit) {
		struct push_item *it;
		struct timespec until;
		int ok;

		if (!p->n) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		it = pop(p);
		pthread_mutex_unlock(&p->mu);
		ok = curl ? send_one(p, curl, it) : -1;
		pthread_mutex_lock(&p->mu);
		if (ok > 0) {
			p->sent++;
			backoff = 0;
			item_free(it);
			continue;
		}
		p->failed++;
		if (ok < 0) {
			p->dropped++;
			item_free(it);
			continue;
		}
		push_in(p, it, true);
		backoff = backoff ? backoff * 2 : 1;
		if (backoff > PUSH_MAX_BACKOFF_S)
			backoff = PUSH_MAX_BACKOFF_S;
		deadline_after(&until, backoff);
		while (!p->quit && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT)
			;
	}
	while (p->n) {
		item_free(pop(p));
		p->dropped++;
	}
	pthread_mutex_unlock(&p->mu);
	if (curl)
		curl_easy_cleanup(curl);
	return NULL;
}

int pusher_start(struct pusher *p, const char *url, char *err, size_t errlen)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->url = url;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	rc = pthread_create(&p->thread, NULL, run, p);
	if (rc) {
		snprintf(err, errlen, "cannot start pushing to %s: %s", url, strerror(rc));
		return -rc;
	}
	p->started = true;
	return 0;
}

void pusher_enqueue(struct pusher *p, const char *name, int64_t from, int64_t until,
		    const uint8_t *body, size_t len)
{
	struct push_item *it = calloc(1, sizeof(*it));
	char *escaped = curl_easy_escape(NULL, name, 0);
	int n;

	if (it)
		it->body = malloc(len ? len : 1);
	n = it && escaped && it->body ? asprintf(&it->query,
						 "name=%s&from=%" PRId64 "&until=%" PRId64
						 "&format=pprof&spyName=heapspy",
						 escaped, from, until)
				      : -1;
	curl_free(escaped);
	pthread_mutex_lock(&p->mu);
	if (n < 0) {
		if (it)
			it->query = NULL;
		item_free(it);
		p->dropped++;
	} else {
		memcpy(it->body, body, len);
		it->len = len;
		push_in(p, it, false);
	}
	pthread_mutex_unlock(&p->mu);
}

void pusher_counts(struct pusher *p, uint64_t *sent, uint64_t *failed, uint64_t *dropped)
{
	pthread_mutex_lock(&p->mu);
	*sent = p->sent;
	*failed = p->failed;
	*dropped = p->dropped;
	pthread_mutex_unlock(&p->mu);
}

void pusher_stop(struct pusher *p)
{
	if (!p->started)
		return;
	pthread_mutex_lock(&p->mu);
	__atomic_store_n(&p->quit, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->started = false;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
}
