/*
 * livecount-load: command line, process fan-out and the JSON summary.
 *
 * The parent is process 0 and forks --procs - 1 children after setting up
 * the shared region. Each child sends its stats_t back as raw bytes over a
 * pipe (same binary, so no serialisation is needed and histograms merge
 * exactly); the parent merges them and prints the summary as the last line
 * of stdout. Human-readable progress goes to stderr.
 */
#include "lc_load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void
usage(FILE *o)
{
	fprintf(
	    o,
	    "usage: livecount-load ingest|fanout [options]\n"
	    "\n"
	    "common:\n"
	    "  --target URL          server, http://127.0.0.1:8080 (loopback "
	    "only)\n"
	    "  --duration S          seconds of load (default 10)\n"
	    "  --urls M              distinct URLs (default 100 ingest, 1 "
	    "fanout)\n"
	    "  --url-prefix S        URL prefix (default unique per run; with "
	    "an explicit\n"
	    "                        prefix counts are read before and after)\n"
	    "  --procs P             load processes (default 1)\n"
	    "  --sources K           bind to 127.0.0.1..127.0.0.K (default 1)\n"
	    "  --tick-ms N           server dispatch tick, for settling waits "
	    "(default 100)\n"
	    "  --timeout S           request timeout (default 10)\n"
	    "  --connect-timeout S   connect+handshake timeout (default 10)\n"
	    "  --no-verify           skip the /v1/counts check\n"
	    "  --quiet               no progress on stderr\n"
	    "  --server-pid PID[,PID...]  report the server's CPU%% and memory "
	    "(from /proc;\n"
	    "                        several pids are summed: cluster nodes, "
	    "nginx workers)\n"
	    "ingest:\n"
	    "  --connections N       keep-alive connections (default 64)\n"
	    "  --batch K             JSON batches of K likes (default: single "
	    "likes)\n"
	    "  --rate R              open loop at R requests/s (default: "
	    "closed loop)\n"
	    "  --requests N          stop after N requests (--duration stays "
	    "the limit)\n"
	    "  --views-per-like V    with --batch: V batches of views (POST "
	    "/v1/views) per\n"
	    "                        batch of likes, on the same URLs (mixed "
	    "ingest)\n"
	    "fanout:\n"
	    "  --transport ws|sse    (default ws)\n"
	    "  --subscribers N       (default 100)\n"
	    "  --like-rate R         likes/s, round-robin over the URLs "
	    "(default 100)\n"
	    "  --like-conns N        connections sending likes (default 4)\n"
	    "  --ramp-per-s C        new subscribers per second (default: no "
	    "limit)\n"
	    "  --max-pending N       connects in flight at once (default 512)\n"
	    "  --lat-samples N       latency samples per update at most "
	    "(default 32)\n"
	    "  --like-target URL     send the likes to this server (another "
	    "cluster node);\n"
	    "                        subscribers and the count check stay on "
	    "--target\n"
	    "  --like-match M        answer (default): a like is the count its "
	    "answer carries;\n"
	    "                        send-order: the k-th like sent is count "
	    "base+k (likes\n"
	    "                        spread over cluster nodes that each "
	    "answer "
	    "their own view)\n"
	    "  --nchan-pub PREFIX    peer baseline: nginx+nchan instead of "
	    "livecount. Likes\n"
	    "                        are POSTed to PREFIX<channel> carrying "
	    "the "
	    "count the\n"
	    "                        tester assigns (livecount's update "
	    "shape); "
	    "use --like-conns 1\n"
	    "  --nchan-sub PREFIX    subscribers on PREFIX<channel> (WS or "
	    "EventSource)\n"
	    "\n"
	    "The last line of stdout is one JSON object with the results.\n");
}

static int
parse_addr(struct sockaddr_in *dst, char *hosthdr, size_t hsz, const char *t)
{
	const char *p = t;
	if (strncmp(p, "http://", 7) == 0)
		p += 7;
	char host[64];
	const char *colon = strchr(p, ':');
	size_t hl = colon ? (size_t)(colon - p) : strcspn(p, "/");
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, p, hl);
	host[hl] = 0;
	long port = 80;
	if (colon) {
		char *end;
		port = strtol(colon + 1, &end, 10);
		if (port <= 0 || port > 65535 || (*end && *end != '/'))
			return -1;
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	memset(dst, 0, sizeof(*dst));
	dst->sin_family = AF_INET;
	dst->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &dst->sin_addr) != 1)
		return -1;
	/* This tool only ever loads servers on this machine. */
	if ((ntohl(dst->sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr,
			"livecount-load: target must be on 127.0.0.0/8\n");
		return -1;
	}
	snprintf(hosthdr, hsz, "%s:%ld", host, port);
	return 0;
}

static int
parse_target(cfg_t *cfg, const char *t)
{
	return parse_addr(&cfg->dst, cfg->hosthdr, sizeof(cfg->hosthdr), t);
}

static void
on_signal(int sig)
{
	(void)sig;
	lc_stop = 1;
}

static void
on_alarm(int sig)
{
	(void)sig;
	static const char msg[] =
	    "livecount-load: watchdog: run exceeded its time bound\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* Nothing more can be done from a signal handler. */
	}
	_exit(3);
}

static double
ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void
print_hist(const char *name, const hist_t *h)
{
	printf("\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
	       "\"max\":%.3f,"
	       "\"mean\":%.3f,\"count\":%llu}",
	       name, ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.9)),
	       ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)),
	       ms(h->max), hist_mean(h) / 1e6, (unsigned long long)h->total);
}

static void
print_summary(const cfg_t *cfg, const stats_t *s, double wall_s)
{
	double d = s->phase_s > 0 ? s->phase_s : cfg->duration_s;
	uint64_t errors = stats_errors(s);
	bool fan = cfg->mode == LC_MODE_FANOUT;
	printf("{\"mode\":\"%s\",", fan ? "fanout" : "ingest");
	if (fan)
		printf("\"transport\":\"%s\",",
		       cfg->transport == LC_T_WS ? "ws" : "sse");
	printf("\"connections\":%llu,\"duration_s\":%.3f,\"procs\":%d,"
	       "\"errors\":%llu,",
	       (unsigned long long)(fan ? (uint64_t)cfg->subscribers
					: s->connections),
	       s->phase_s, cfg->procs, (unsigned long long)errors);
	printf("\"errors_by_kind\":{");
	bool first = true;
	for (int i = 0; i < LC_E__COUNT; i++) {
		if (!s->err[i])
			continue;
		printf("%s\"%s\":%llu", first ? "" : ",", lc_err_names[i],
		       (unsigned long long)s->err[i]);
		first = false;
	}
	printf("},");
	printf(
	    "\"requests\":%llu,\"requests_per_s\":%.1f,\"likes_per_s\":%.1f,",
	    (unsigned long long)s->requests_ok, (double)s->requests_ok / d,
	    (double)s->likes_acked / d);
	printf("\"views\":%llu,\"views_per_s\":%.1f,\"items_per_s\":%.1f,",
	       (unsigned long long)s->views_acked, (double)s->views_acked / d,
	       (double)(s->likes_acked + s->views_acked) / d);
	printf("\"msgs_per_s\":%.1f,", fan ? (double)s->msgs_phase / d : 0.0);
	double cspan =
	    s->t_last_ready > s->t_first_connect
		? (double)(s->t_last_ready - s->t_first_connect) / 1e9
		: 0;
	printf("\"connect_per_s\":%.1f,",
	       cspan > 0 ? (double)s->ready / cspan : 0.0);
	print_hist("latency_ms", &s->lat);
	printf(",");
	bool verified = cfg->verify && s->urls_checked > 0;
	if (fan) {
		if (verified)
			printf("\"delivered_ratio\":%.6f,",
			       cfg->subscribers
				   ? (double)s->converged / cfg->subscribers
				   : 0.0);
		else
			printf("\"delivered_ratio\":null,");
	} else {
		if (verified)
			printf("\"delivered_ratio\":%.6f,",
			       (double)s->urls_ok / (double)s->urls_checked);
		else
			printf("\"delivered_ratio\":null,");
	}
	printf("\"acknowledged\":%llu,\"counted\":%lld,\"expected\":%lld,"
	       "\"counts_exact\":%s,",
	       (unsigned long long)s->likes_acked, (long long)s->counted,
	       (long long)s->expected,
	       verified ? (s->urls_ok == s->urls_checked ? "true" : "false")
			: "null");
	printf("\"urls_checked\":%llu,\"urls_ok\":%llu,\"stale_reads\":%llu,",
	       (unsigned long long)s->urls_checked,
	       (unsigned long long)s->urls_ok,
	       (unsigned long long)s->stale_reads);
	printf("\"requests_sent\":%llu,\"unsent\":%llu,\"idle_408\":%llu,"
	       "\"ambiguous_likes\":%llu,",
	       (unsigned long long)s->requests_sent,
	       (unsigned long long)s->unsent, (unsigned long long)s->idle_408,
	       (unsigned long long)s->ambiguous);
	if (fan) {
		printf("\"subscribers\":%d,\"ready\":%llu,\"converged\":%llu,"
		       "\"msgs\":%llu,"
		       "\"snapshots\":%llu,\"updates\":%llu,\"pings\":%llu,"
		       "\"coalesced\":%llu,"
		       "\"latency_unmatched\":%llu,\"like_rate\":%.1f,\"urls\":"
		       "%d,",
		       cfg->subscribers, (unsigned long long)s->ready,
		       (unsigned long long)s->converged,
		       (unsigned long long)s->msgs,
		       (unsigned long long)s->snapshots,
		       (unsigned long long)s->updates,
		       (unsigned long long)s->pings,
		       (unsigned long long)s->coalesced,
		       (unsigned long long)s->lat_unmatched, cfg->like_rate,
		       cfg->urls);
		printf("\"msgs_pre\":%llu,\"msgs_pre_max\":%llu,"
		       "\"same_count_updates\":%llu,",
		       (unsigned long long)s->msgs_pre,
		       (unsigned long long)s->msgs_pre_max,
		       (unsigned long long)s->same_count);
		print_hist("connect_ms", &s->connect);
		printf(",");
		print_hist("like_rtt_ms", &s->rtt);
		printf(",");
		print_hist("server_to_client_ms", &s->delivery);
		printf(",");
	} else {
		printf("\"batch\":%d,\"urls\":%d,\"rate\":%.1f,", cfg->batch,
		       cfg->urls, cfg->rate);
	}
	if (cfg->server_pid) {
		printf("\"server_cpu_pct\":%.1f,\"server_rss_start_kb\":%ld,"
		       "\"server_rss_ready_kb\":%ld,"
		       "\"server_rss_end_kb\":%ld,",
		       s->server_cpu_wall_s > 0
			   ? 100.0 * s->server_cpu_s / s->server_cpu_wall_s
			   : 0.0,
		       s->server_rss_start_kb, s->server_rss_ready_kb,
		       s->server_rss_end_kb);
		if (fan && s->server_connect_wall_s > 0)
			printf("\"server_cpu_connect_s\":%.3f,"
			       "\"server_connect_wall_s\":%.3f,",
			       s->server_cpu_connect_s,
			       s->server_connect_wall_s);
		if (fan && s->ready && s->server_rss_ready_kb)
			printf("\"server_rss_per_subscriber_kb\":%.3f,",
			       (double)(s->server_rss_ready_kb -
					s->server_rss_start_kb) /
				   (double)s->ready);
	}
	printf("\"loadgen_cpu_s\":%.3f,\"loadgen_cpu_pct\":%.1f,\"wall_s\":%."
	       "3f}\n",
	       s->cpu_s,
	       s->cpu_wall_s > 0 ? 100.0 * s->cpu_s / s->cpu_wall_s : 0.0,
	       wall_s);
	fflush(stdout);
}

static int
run_proc(const cfg_t *cfg, int proc, shm_t *shm, const urltab_t *urls,
	 stats_t *st)
{
	if (cfg->mode == LC_MODE_INGEST)
		return run_ingest(cfg, proc, shm, st);
	return run_fanout(cfg, proc, shm, urls, st);
}

static int
read_full(int fd, void *buf, size_t n)
{
	size_t o = 0;
	while (o < n) {
		ssize_t r = read(fd, (char *)buf + o, n - o);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		o += (size_t)r;
	}
	return 0;
}

static int
write_full(int fd, const void *buf, size_t n)
{
	size_t o = 0;
	while (o < n) {
		ssize_t w = write(fd, (const char *)buf + o, n - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		o += (size_t)w;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cfg_t cfg = {0};
	if (strcmp(argv[1], "ingest") == 0)
		cfg.mode = LC_MODE_INGEST;
	else if (strcmp(argv[1], "fanout") == 0)
		cfg.mode = LC_MODE_FANOUT;
	else {
		usage(stderr);
		return 2;
	}
	cfg.connections = 64;
	cfg.duration_s = 10;
	cfg.urls = -1;
	cfg.procs = 1;
	cfg.sources = 1;
	cfg.subscribers = 100;
	cfg.like_rate = 100;
	cfg.tick_ms = 100;
	cfg.like_conns = 4;
	cfg.timeout_s = 10;
	cfg.connect_timeout_s = 10;
	cfg.max_pending = 512;
	cfg.lat_samples = 32;
	cfg.verify = true;
	const char *target = "http://127.0.0.1:8080";
	const char *like_target = NULL;

	enum {
		O_TARGET = 1,
		O_CONN,
		O_DUR,
		O_BATCH,
		O_URLS,
		O_RATE,
		O_PREFIX,
		O_PROCS,
		O_SOURCES,
		O_TRANSPORT,
		O_SUBS,
		O_LIKE_RATE,
		O_RAMP,
		O_TICK,
		O_LIKE_CONNS,
		O_TIMEOUT,
		O_CTIMEOUT,
		O_MAX_PENDING,
		O_LAT_SAMPLES,
		O_NO_VERIFY,
		O_QUIET,
		O_SERVER_PID,
		O_REQUESTS,
		O_LIKE_TARGET,
		O_NCHAN_PUB,
		O_NCHAN_SUB,
		O_LIKE_MATCH,
		O_VIEWS,
		O_HELP
	};
	static const struct option opts[] = {
	    {"target", required_argument, 0, O_TARGET},
	    {"connections", required_argument, 0, O_CONN},
	    {"duration", required_argument, 0, O_DUR},
	    {"batch", required_argument, 0, O_BATCH},
	    {"urls", required_argument, 0, O_URLS},
	    {"rate", required_argument, 0, O_RATE},
	    {"url-prefix", required_argument, 0, O_PREFIX},
	    {"procs", required_argument, 0, O_PROCS},
	    {"sources", required_argument, 0, O_SOURCES},
	    {"transport", required_argument, 0, O_TRANSPORT},
	    {"subscribers", required_argument, 0, O_SUBS},
	    {"like-rate", required_argument, 0, O_LIKE_RATE},
	    {"ramp-per-s", required_argument, 0, O_RAMP},
	    {"tick-ms", required_argument, 0, O_TICK},
	    {"like-conns", required_argument, 0, O_LIKE_CONNS},
	    {"timeout", required_argument, 0, O_TIMEOUT},
	    {"connect-timeout", required_argument, 0, O_CTIMEOUT},
	    {"max-pending", required_argument, 0, O_MAX_PENDING},
	    {"lat-samples", required_argument, 0, O_LAT_SAMPLES},
	    {"no-verify", no_argument, 0, O_NO_VERIFY},
	    {"quiet", no_argument, 0, O_QUIET},
	    {"server-pid", required_argument, 0, O_SERVER_PID},
	    {"requests", required_argument, 0, O_REQUESTS},
	    {"like-target", required_argument, 0, O_LIKE_TARGET},
	    {"nchan-pub", required_argument, 0, O_NCHAN_PUB},
	    {"nchan-sub", required_argument, 0, O_NCHAN_SUB},
	    {"like-match", required_argument, 0, O_LIKE_MATCH},
	    {"views-per-like", required_argument, 0, O_VIEWS},
	    {"help", no_argument, 0, O_HELP},
	    {0, 0, 0, 0},
	};
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_TARGET:
			target = optarg;
			break;
		case O_CONN:
			cfg.connections = atoi(optarg);
			break;
		case O_DUR:
			cfg.duration_s = atof(optarg);
			break;
		case O_BATCH:
			cfg.batch = atoi(optarg);
			break;
		case O_URLS:
			cfg.urls = atoi(optarg);
			break;
		case O_RATE:
			cfg.rate = atof(optarg);
			break;
		case O_PREFIX:
			snprintf(cfg.url_prefix, sizeof(cfg.url_prefix), "%s",
				 optarg);
			cfg.prefix_given = true;
			break;
		case O_PROCS:
			cfg.procs = atoi(optarg);
			break;
		case O_SOURCES:
			cfg.sources = atoi(optarg);
			break;
		case O_TRANSPORT:
			if (strcmp(optarg, "ws") == 0)
				cfg.transport = LC_T_WS;
			else if (strcmp(optarg, "sse") == 0)
				cfg.transport = LC_T_SSE;
			else {
				fprintf(stderr,
					"livecount-load: --transport ws|sse\n");
				return 2;
			}
			break;
		case O_SUBS:
			cfg.subscribers = atoi(optarg);
			break;
		case O_LIKE_RATE:
			cfg.like_rate = atof(optarg);
			break;
		case O_RAMP:
			cfg.ramp_per_s = atof(optarg);
			break;
		case O_TICK:
			cfg.tick_ms = atoi(optarg);
			break;
		case O_LIKE_CONNS:
			cfg.like_conns = atoi(optarg);
			break;
		case O_TIMEOUT:
			cfg.timeout_s = atof(optarg);
			break;
		case O_CTIMEOUT:
			cfg.connect_timeout_s = atof(optarg);
			break;
		case O_MAX_PENDING:
			cfg.max_pending = atoi(optarg);
			break;
		case O_LAT_SAMPLES:
			cfg.lat_samples = atoi(optarg);
			break;
		case O_NO_VERIFY:
			cfg.verify = false;
			break;
		case O_QUIET:
			cfg.quiet = true;
			break;
		case O_SERVER_PID: {
			char *p = optarg, *end;
			cfg.nserver_pids = 0;
			while (*p && cfg.nserver_pids < LC_MAX_PROCS) {
				long v = strtol(p, &end, 10);
				if (end == p || v <= 0) {
					fprintf(stderr, "livecount-load: bad "
							"--server-pid\n");
					return 2;
				}
				cfg.server_pids[cfg.nserver_pids++] = (int)v;
				p = *end == ',' ? end + 1 : end;
				if (*end && *end != ',')
					break;
			}
			cfg.server_pid =
			    cfg.nserver_pids ? cfg.server_pids[0] : 0;
			break;
		}
		case O_LIKE_TARGET:
			like_target = optarg;
			break;
		case O_NCHAN_PUB:
			snprintf(cfg.nchan_pub, sizeof(cfg.nchan_pub), "%s",
				 optarg);
			cfg.nchan = true;
			break;
		case O_LIKE_MATCH:
			if (strcmp(optarg, "send-order") == 0)
				cfg.match_send_order = true;
			else if (strcmp(optarg, "answer") == 0)
				cfg.match_send_order = false;
			else {
				fprintf(stderr, "livecount-load: --like-match "
						"answer|send-order\n");
				return 2;
			}
			break;
		case O_NCHAN_SUB:
			snprintf(cfg.nchan_sub, sizeof(cfg.nchan_sub), "%s",
				 optarg);
			cfg.nchan = true;
			break;
		case O_REQUESTS:
			cfg.max_requests = strtoull(optarg, NULL, 10);
			break;
		case O_VIEWS:
			cfg.views_per_like = atoi(optarg);
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "livecount-load: unexpected argument %s\n",
			argv[optind]);
		return 2;
	}
	if (cfg.urls < 0)
		cfg.urls = cfg.mode == LC_MODE_INGEST ? 100 : 1;
	if (parse_target(&cfg, target) < 0) {
		fprintf(stderr, "livecount-load: bad --target %s\n", target);
		return 2;
	}
	if (like_target) {
		if (parse_addr(&cfg.like_dst, cfg.like_hosthdr,
			       sizeof(cfg.like_hosthdr), like_target) < 0) {
			fprintf(stderr,
				"livecount-load: bad --like-target %s\n",
				like_target);
			return 2;
		}
		cfg.like_target_given = true;
	}
	if ((cfg.nchan || like_target) && cfg.mode != LC_MODE_FANOUT) {
		fprintf(stderr, "livecount-load: --like-target and --nchan-* "
				"are fanout options\n");
		return 2;
	}
	if (cfg.nchan) {
		if (!cfg.nchan_pub[0] || !cfg.nchan_sub[0]) {
			fprintf(stderr, "livecount-load: nchan needs both "
					"--nchan-pub and --nchan-sub\n");
			return 2;
		}
		if (cfg.prefix_given) {
			fprintf(stderr, "livecount-load: --url-prefix is not "
					"supported with nchan\n");
			return 2;
		}
	}
	if (cfg.connections < 1 || cfg.duration_s <= 0 ||
	    cfg.duration_s > 86400 || cfg.batch < 0 || cfg.batch > 10000 ||
	    cfg.urls < 1 || cfg.urls > 10000000 || cfg.rate < 0 ||
	    cfg.procs < 1 || cfg.procs > LC_MAX_PROCS || cfg.sources < 1 ||
	    cfg.sources > 65000 || cfg.subscribers < 0 || cfg.like_rate <= 0 ||
	    cfg.tick_ms < 1 || cfg.like_conns < 1 || cfg.timeout_s <= 0 ||
	    cfg.connect_timeout_s <= 0 || cfg.max_pending < 1 ||
	    cfg.lat_samples < 1 || cfg.ramp_per_s < 0 ||
	    cfg.views_per_like < 0 || cfg.views_per_like > 1000 ||
	    (cfg.views_per_like &&
	     (!cfg.batch || cfg.mode != LC_MODE_INGEST))) {
		fprintf(stderr,
			"livecount-load: option out of range (see --help)\n");
		return 2;
	}
	uint64_t t_start = lc_now_ns();
	snprintf(cfg.run_tag, sizeof(cfg.run_tag), "%d-%llu", (int)getpid(),
		 (unsigned long long)lc_wall_ms());
	if (!cfg.prefix_given)
		snprintf(cfg.url_prefix, sizeof(cfg.url_prefix),
			 "https://load.livecount.test/%s/", cfg.run_tag);

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	long need =
	    (cfg.mode == LC_MODE_FANOUT ? cfg.subscribers + cfg.like_conns
					: cfg.connections) /
		cfg.procs +
	    32;
	if ((rlim_t)need > rl.rlim_cur)
		fprintf(stderr,
			"livecount-load: warning: %ld descriptors per process "
			"needed, limit is %llu "
			"(use --procs)\n",
			need, (unsigned long long)rl.rlim_cur);

	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Watchdog: every phase has its own deadline; this bounds the sum. */
	double bound = cfg.duration_s + 2 * cfg.timeout_s +
		       3 * cfg.connect_timeout_s + 180;
	if (cfg.mode == LC_MODE_FANOUT && cfg.ramp_per_s > 0)
		bound += cfg.subscribers / cfg.ramp_per_s;
	signal(SIGALRM, on_alarm);
	alarm((unsigned)bound);

	urltab_t urls = {0};
	uint32_t ring = 0;
	if (cfg.mode == LC_MODE_FANOUT) {
		if (urltab_build(&urls, cfg.url_prefix, (uint32_t)cfg.urls,
				 false) < 0) {
			fprintf(stderr,
				"livecount-load: cannot build the URL table\n");
			return 1;
		}
		/* Room for ~30 s of likes per URL, at least 64 entries. */
		double per_url = cfg.like_rate / cfg.urls * 30;
		ring = 64;
		while (ring < per_url && ring < (1u << 20))
			ring <<= 1;
	}
	shm_t *shm = shm_create(
	    cfg.mode == LC_MODE_FANOUT ? (uint32_t)cfg.urls : 0, ring);
	if (!shm) {
		fprintf(stderr,
			"livecount-load: cannot map the shared region\n");
		return 1;
	}
	if (!cfg.quiet)
		fprintf(stderr,
			"livecount-load %s: target %s, %d process(es), url "
			"prefix %s\n",
			argv[1], cfg.hosthdr, cfg.procs, cfg.url_prefix);
	fflush(stdout);
	fflush(stderr);

	pid_t kids[LC_MAX_PROCS];
	int pipes[LC_MAX_PROCS];
	pid_t parent = getpid();
	for (int p = 1; p < cfg.procs; p++) {
		int fds[2];
		if (pipe(fds) < 0) {
			perror("pipe");
			return 1;
		}
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			close(fds[0]);
			for (int q = 1; q < p; q++)
				close(pipes[q]);
			stats_t *st = calloc(1, sizeof(*st));
			if (!st)
				_exit(1);
			int rc = run_proc(&cfg, p, shm, &urls, st);
			if (write_full(fds[1], st, sizeof(*st)) < 0)
				rc = -1;
			_exit(rc < 0 ? 1 : 0);
		}
		close(fds[1]);
		kids[p] = pid;
		pipes[p] = fds[0];
	}
	stats_t *total = calloc(1, sizeof(*total));
	stats_t *child = calloc(1, sizeof(*child));
	if (!total || !child)
		return 1;
	int rc = run_proc(&cfg, 0, shm, &urls, total);
	for (int p = 1; p < cfg.procs; p++) {
		if (read_full(pipes[p], child, sizeof(*child)) == 0) {
			stats_merge(total, child);
		} else {
			fprintf(stderr,
				"livecount-load: process %d sent no results\n",
				p);
			total->err[LC_E_PHASE_TIMEOUT]++;
		}
		close(pipes[p]);
		int status;
		waitpid(kids[p], &status, 0);
	}
	if (rc < 0)
		total->err[LC_E_PHASE_TIMEOUT]++;
	alarm(0);
	print_summary(&cfg, total, (double)(lc_now_ns() - t_start) / 1e9);
	urltab_free(&urls);
	free(child);
	int failed = stats_errors(total) != 0;
	free(total);
	if (lc_stop)
		return 130;
	return failed;
}
