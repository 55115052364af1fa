"""POST /v1/likes batches through the real server (issue 21 item 3): the
usual bodies go through simdjson, the rest and every error through jansson,
and a client sees the same answers either way: exact counts for good
batches in any JSON spelling, and for a bad one the first bad item named,
the documented error, and nothing of the batch counted."""
import json

from lc import Server, check, run

S = None


def post(body):
    st, data, r = S.request("POST", "/v1/likes", body,
                            {"Content-Type": "application/json"})
    return st, json.loads(data)


def count(url):
    return S.counts(url)[url].get("count", 0)


def items(prefix, k, n=1):
    return ['{"url":"%s/%d","n":%d}' % (prefix, i % 10, n) for i in range(k)]


def test_good_batches_in_any_spelling_count_exactly():
    # whitespace, key order, escaped keys and urls, an extra key (which
    # jansson's path takes), n omitted
    body = (" [\n" + ",\n ".join(items("g", 9996)) +
            ', { "n" : 2 , "url" : "g/0" }'
            ', {"\\u0075rl":"g/\\u00e9\\/\\ud83d\\ude00"}'
            ', {"url":"g/1","n":-1,"note":{"x":[1,2]}}'
            ', {"url":"g/2"} ]\r\n')
    st, b = post(body)
    check(st == 200 and b == {"accepted": 10000}, (st, b))
    S.settle()
    got = {u: count(u) for u in ("g/0", "g/1", "g/2", "g/3",
                                 "g/\u00e9/\U0001F600")}
    # exact totals: 9996 items over g/0..g/9 (999 or 1000 each) plus four
    per = [sum(1 for i in range(9996) if i % 10 == k) for k in range(10)]
    check(got["g/0"] == per[0] + 2, got)
    check(got["g/1"] == per[1] - 1, got)
    check(got["g/2"] == per[2] + 1, got)
    check(got["g/3"] == per[3], got)
    check(got["g/\u00e9/\U0001F600"] == 1, got)


def check_refused(prefix, body, status, code, message=None, prefix_msg=None):
    st, b = post(body)
    check(st == status and b.get("error") == code, (st, b))
    if message is not None:
        check(b["message"] == message, b)
    if prefix_msg is not None:
        check(b["message"].startswith(prefix_msg), b)
    S.settle()
    for k in range(10):
        check(count("%s/%d" % (prefix, k)) == 0, (prefix, k))
    return b


def test_bad_last_item_named_nothing_counted():
    good = ",".join(items("b1", 9999))
    check_refused("b1", "[" + good + ',{"url":"b1/0","n":0}]', 400, "bad_n",
                  "n must be a non-zero integer from -1000000 to 1000000 "
                  "(item 9999)")
    good = ",".join(items("b2", 9999))
    check_refused("b2", "[" + good + ',{"url":"b2/0","n":"1"}]', 400,
                  "bad_n", "n must be a non-zero integer from -1000000 to "
                  "1000000 (item 9999)")
    good = ",".join(items("b3", 9999))
    check_refused("b3", "[" + good + ',{"url":"a\\nb"}]', 400, "bad_url",
                  "url contains a control character at byte 1 (item 9999)")
    good = ",".join(items("b4", 9999))
    check_refused("b4", "[" + good + ",1]", 400, "bad_json",
                  'a like must be an object {"url":..,"n":..} (item 9999)')
    good = ",".join(items("b5", 9999))
    check_refused("b5", "[" + good + ',{"url":"b5/0","n":1000001}]', 400,
                  "bad_n")


def test_first_of_two_bad_items_named():
    its = items("f", 10000)
    its[5000] = '{"url":""}'
    its[9000] = '{"url":"f/0","n":0}'
    check_refused("f", "[" + ",".join(its) + "]", 400, "bad_url",
                  "url is missing or empty (item 5000)")


def test_malformed_batches_refused_nothing_counted():
    good = ",".join(items("m", 9999))
    for tail in (',{"url":"m/0","n":1,"n":2}]',     # duplicate key
                 ',{"url":"m/0"}] x',                 # bytes after the value
                 ',{"url":"m/0",}]',                  # trailing comma
                 ',{"url":"m/0\\u0000"}]',            # NUL in a string
                 ',{"url":"m/0\\udc00"}]',            # lone surrogate
                 ',{"url":"m/0","n":1e400}]'):        # number out of range
        check_refused("m", "[" + good + tail, 400, "bad_json",
                      prefix_msg="malformed JSON: ")


def test_too_many_items_and_depth():
    check_refused("t", "[" + ",".join(items("t", 10001)) + "]", 413,
                  "too_many_items")
    check_refused("d", '[{"url":"d/0","x":[[[[[[[[1]]]]]]]]}]', 400,
                  "bad_json", prefix_msg="JSON nested deeper than ")


def main():
    global S
    with Server() as S:
        run([test_good_batches_in_any_spelling_count_exactly,
             test_bad_last_item_named_nothing_counted,
             test_first_of_two_bad_items_named,
             test_malformed_batches_refused_nothing_counted,
             test_too_many_items_and_depth])


if __name__ == "__main__":
    main()
