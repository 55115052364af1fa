/*
 * Log-bucketed latency histogram (HDR-style) and statistics merging.
 *
 * A note on precision: a value v >= 128 ns falls in the bucket
 * [m << s, (m + 1) << s) with m in [128, 255], so a bucket is at most 1/128
 * of its lower bound wide; quantiles report the midpoint (<= 0.4 % error)
 * and the maximum is tracked exactly. Recording is a clz and an add, so
 * recording every sample is cheaper than keeping them.
 */
#include "lc_load.h"

#include <math.h>

const char *const lc_err_names[LC_E__COUNT] = {
#define X(id, name) name,
    LC_ERRORS(X)
#undef X
};

static inline unsigned
hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = e - HIST_SUB_BITS;
	unsigned idx =
	    HIST_SUB + shift * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static uint64_t
hist_value(unsigned idx)
{
	if (idx < HIST_SUB)
		return idx;
	unsigned shift = (idx - HIST_SUB) / HIST_SUB;
	uint64_t m = (idx - HIST_SUB) % HIST_SUB + HIST_SUB;
	return (m << shift) + ((1ull << shift) >> 1);
}

void
hist_record_n(hist_t *h, uint64_t v, uint64_t n)
{
	if (!n)
		return;
	h->counts[hist_index(v)] += n;
	h->total += n;
	h->sum += (double)v * (double)n;
	if (v > h->max)
		h->max = v;
}

void
hist_merge(hist_t *dst, const hist_t *src)
{
	if (!src->total)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
hist_quantile(const hist_t *h, double q)
{
	if (!h->total)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)h->total);
	if (rank < 1)
		rank = 1;
	uint64_t acc = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		acc += h->counts[i];
		if (acc >= rank) {
			uint64_t v = hist_value(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

double
hist_mean(const hist_t *h)
{
	return h->total ? h->sum / (double)h->total : 0.0;
}

uint64_t
stats_errors(const stats_t *s)
{
	uint64_t n = 0;
	for (int i = 0; i < LC_E__COUNT; i++)
		n += s->err[i];
	return n;
}

void
stats_merge(stats_t *d, const stats_t *s)
{
	for (int i = 0; i < LC_E__COUNT; i++)
		d->err[i] += s->err[i];
	d->connections += s->connections;
	d->requests_ok += s->requests_ok;
	d->requests_sent += s->requests_sent;
	d->likes_acked += s->likes_acked;
	d->views_acked += s->views_acked;
	d->msgs_pre += s->msgs_pre;
	if (s->msgs_pre_max > d->msgs_pre_max)
		d->msgs_pre_max = s->msgs_pre_max;
	d->same_count += s->same_count;
	d->unsent += s->unsent;
	d->idle_408 += s->idle_408;
	d->ambiguous += s->ambiguous;
	d->msgs += s->msgs;
	d->msgs_phase += s->msgs_phase;
	d->snapshots += s->snapshots;
	d->updates += s->updates;
	d->pings += s->pings;
	d->coalesced += s->coalesced;
	d->lat_unmatched += s->lat_unmatched;
	d->subscribers += s->subscribers;
	d->ready += s->ready;
	d->converged += s->converged;
	d->urls_checked += s->urls_checked;
	d->urls_ok += s->urls_ok;
	d->stale_reads += s->stale_reads;
	d->counted += s->counted;
	d->expected += s->expected;
	if (s->t_first_connect &&
	    (!d->t_first_connect || s->t_first_connect < d->t_first_connect))
		d->t_first_connect = s->t_first_connect;
	if (s->t_last_ready > d->t_last_ready)
		d->t_last_ready = s->t_last_ready;
	if (s->phase_s > d->phase_s)
		d->phase_s = s->phase_s;
	d->cpu_s += s->cpu_s;
	if (s->cpu_wall_s > d->cpu_wall_s)
		d->cpu_wall_s = s->cpu_wall_s;
	if (s->server_cpu_wall_s > 0) {
		d->server_cpu_s = s->server_cpu_s;
		d->server_cpu_wall_s = s->server_cpu_wall_s;
	}
	if (s->server_connect_wall_s > 0) {
		d->server_cpu_connect_s = s->server_cpu_connect_s;
		d->server_connect_wall_s = s->server_connect_wall_s;
	}
	if (s->server_rss_start_kb)
		d->server_rss_start_kb = s->server_rss_start_kb;
	if (s->server_rss_ready_kb)
		d->server_rss_ready_kb = s->server_rss_ready_kb;
	if (s->server_rss_end_kb)
		d->server_rss_end_kb = s->server_rss_end_kb;
	hist_merge(&d->lat, &s->lat);
	hist_merge(&d->connect, &s->connect);
	hist_merge(&d->rtt, &s->rtt);
	hist_merge(&d->delivery, &s->delivery);
}
