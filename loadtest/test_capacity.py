#!/usr/bin/env python3
"""ctest capacity_model: loadtest/capacity.py on the shipped results.

No timing: the tool only computes. It must predict this box's measured
100k-subscriber run (RESULTS.md cluster 5) and the other measured runs of
loadtest/capacity_results.json within their tolerance (30 %), and its plans
must behave as the model says (first bottlenecks, monotonic sizing).
"""
import contextlib
import copy
import io
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import capacity  # noqa: E402

RESULTS = os.path.join(HERE, "capacity_results.json")


def run_cli(*args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = capacity.main(["--results", RESULTS, *args])
    return rc, buf.getvalue()


class Capacity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = capacity.load_results(RESULTS)
        cls.c = capacity.constants(cls.res)

    def test_results_are_real_runs(self):
        # at least 3 runs per unit cost and per scaling cell, each with its load average
        kinds = {}
        for r in self.res["unit_runs"]:
            kinds.setdefault(r["kind"], []).append(r)
            self.assertIn("loadavg_start", r)
        for k in ("frame_ws", "frame_sse", "connect_ws", "connect_sse", "like_single",
                  "like_batch", "url", "idem"):
            self.assertGreaterEqual(len(kinds.get(k, [])), 3, k)
        cells = {}
        for r in self.res["scaling_runs"]:
            cells.setdefault((r["nodes"], r["rate"]), []).append(r)
            self.assertIn("loadavg_start", r)
        for n in (2, 4, 8, 16):
            for rate in (1000, 10000, 50000):
                self.assertGreaterEqual(len(cells.get((n, rate), [])), 3, (n, rate))

    def test_predicts_the_100k_run(self):
        run = next(r for r in self.res["validation"]
                   if r["name"] == "cluster5_100k_subscribers")
        p = capacity.predict(run, self.c)
        m = run["measured"]["nodes_cpu_pct"]["value"]
        self.assertLessEqual(abs(p["nodes_cpu_pct"] / m - 1), 0.30,
                             "predicted %.1f %% vs measured %.1f %%" % (p["nodes_cpu_pct"], m))

    def test_predicts_every_measured_run(self):
        ok, rows = capacity.check(self.res, self.c)
        self.assertGreaterEqual(len({r["run"] for r in rows}), 2)
        self.assertTrue(ok, "\n".join("%s %s: measured %s predicted %.4g (%+.0f %%)"
                                      % (r["run"], r["quantity"], r["measured"],
                                         r["predicted"], 100 * r["error"])
                                      for r in rows if not r["ok"]))

    def test_check_fails_when_a_constant_is_off(self):
        # the check can fail: a frame costing twice as much misses the 100k run
        c = copy.deepcopy(self.c)
        c["cpu_frame_ws"]["value"] *= 2
        ok, rows = capacity.check(self.res, c)
        self.assertFalse(ok)
        self.assertFalse(next(r for r in rows if r["quantity"] == "nodes_cpu_pct")["ok"])

    def test_cli_check_exit_status(self):
        rc, out = run_cli("--check")
        self.assertEqual(rc, 0, out)
        self.assertIn("cluster5_100k_subscribers", out)

    def target(self, **kw):
        t = {"viewers": 1e6, "likes_per_s": 1e4, "live_urls": 1e6, "hot_url_viewers": 0,
             "hot_url_likes": None, "held_urls": None, "stored_urls": None,
             "connects_per_s": None, "dwell_s": 120, "cores": 16, "ram_gb": 64,
             "nic_gbit": 10, "max_util": 0.7, "redis_util": 0.8, "tick_ms": 100,
             "transport": "ws", "batched_share": 0.0, "fd_limit": 1048576,
             "max_subs_per_machine": 100000, "max_urls": 5000000, "url_bytes": 60,
             "frame_bytes": 200}
        t.update(kw)
        return t

    def test_large_site_fits_today(self):
        p = capacity.plan(self.target(), self.c)
        self.assertTrue(p["feasible"])
        self.assertEqual(p["machines"], 10)  # 100k subscribers per machine
        self.assertEqual(p["redis_instances"], 1)

    def test_changed_urls_follow_poisson(self):
        # 10k likes/s over 1M URLs: nearly every like changes a URL of its own
        w = capacity.workload(self.target())
        self.assertAlmostEqual(w["changed_urls_per_s"], 1e4, delta=100)
        # one hot URL liked 1M times/s changes once per tick
        w = capacity.workload(self.target(viewers=1e7, hot_url_viewers=1e7, live_urls=1,
                                          likes_per_s=1e6))
        self.assertAlmostEqual(w["changed_urls_per_s"], 10, delta=0.01)
        self.assertAlmostEqual(w["frames_per_s"], 1e8, delta=1e3)

    def test_every_node_hears_every_change(self):
        # the merge cost per machine does not shrink with machines: more changes
        # make it the first bottleneck and no machine count lifts it
        p = capacity.plan(self.target(likes_per_s=1e8, live_urls=1e9, viewers=1e6), self.c)
        self.assertFalse(p["feasible"])
        merge = next(r for r in p["resources"] if r["resource"] == "node_merge")
        self.assertGreater(merge["utilization"], 1)
        p2 = capacity.plan(self.target(likes_per_s=1e8, live_urls=1e9, viewers=1e7), self.c)
        merge2 = next(r for r in p2["resources"] if r["resource"] == "node_merge")
        self.assertGreaterEqual(merge2["utilization"], merge["utilization"] * 0.99)

    def test_hot_url_is_pushed_by_every_node(self):
        # a hot URL liked on N nodes: N ZADD per tick and N x N deliveries
        t = self.target(viewers=1e7, hot_url_viewers=1e7, live_urls=1, likes_per_s=1e6)
        w = capacity.workload(t)
        e10 = capacity.node_count_effects(t, w, 10, self.c)
        e100 = capacity.node_count_effects(t, w, 100, self.c)
        self.assertAlmostEqual(e10["zadd_per_s"], 100, delta=1)
        self.assertAlmostEqual(e100["deliveries_per_s"] / e10["deliveries_per_s"], 100, delta=1)

    def test_three_targets_name_a_first_bottleneck(self):
        for args in (["--viewers", "1e6", "--likes-per-s", "1e4", "--live-urls", "1e6"],
                     ["--viewers", "3e8", "--likes-per-s", "1e6", "--live-urls", "3e7",
                      "--stored-urls", "8e9"],
                     ["--viewers", "1e7", "--hot-url-viewers", "1e7", "--live-urls", "1",
                      "--likes-per-s", "1e6"]):
            rc, out = run_cli(*args, "--json")
            self.assertEqual(rc, 0)
            p = json.loads(out)
            self.assertIn(p["first_bottleneck"]["resource"], capacity.HARD)
            self.assertTrue(p["first_bottleneck"]["design_change"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
