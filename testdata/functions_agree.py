#!/usr/bin/env python3
"""Calls the patterns' Redis Functions library by name from Python (redis-py),
on the keys the Go API uses: the program of the test that checks that Go and
another language agree (docs/other-languages.md).

usage: functions_agree.py HOST PORT LIBRARY PREFIX OP ARG...

  lock-obtain ID TOKEN TTL_MS     the fencing token (> 0), or <= 0: held
  lock-release ID TOKEN           1 if released, 0 if not the owner's
  limit KEY LIMITER RATE PERIOD_MS   fixed window: [count, ms left]; count < 0: denied
  cache-get CACHE KEY             the value (JSON), or null when absent
  cache-set CACHE KEY JSON TTL_MS the entries written (1)
  enqueue QUEUE BODY              the new message's id

Prints the result as JSON on one line.
"""
import json
import sys
import zlib

import redis


def main(argv):
    host, port, lib, prefix, op, args = argv[1], int(argv[2]), argv[3], argv[4], argv[5], argv[6:]
    r = redis.Redis(host=host, port=port, decode_responses=True)

    def fcall(name, keys, *a):
        return r.fcall(lib + "_" + name, len(keys), *keys, *a)

    def key(pattern, id_, *suffixes):
        # The Go key builder: PREFIX:PATTERN:{ID}:SUFFIX... (ids without
        # '{', '}', '%', ':' or control bytes need no escaping).
        return ":".join([prefix, pattern, "{" + id_ + "}"] + list(suffixes))

    if op == "lock-obtain":
        id_, token, ttl = args
        lock = key("lock", id_)
        out = fcall("lock_obtain", [lock, lock + ":fence"], token, ttl, 7 * 24 * 3600 * 1000)
    elif op == "lock-release":
        id_, token = args
        out = fcall("lock_release", [key("lock", id_)], token)
    elif op == "limit":
        k, limiter, rate, period = args
        out = fcall("rl_fixed_window", [key("rl", k, limiter, "fw", period)], 1, 1, rate, period)
    elif op == "cache-get":
        cache, k = args
        raw = redis.Redis(host=host, port=port)  # the payload may be binary
        entry = raw.get(key("cache", cache, "e", k))
        out = None
        if entry is not None:
            # "1|WRITTEN|DELTA|NEG|TAGS\n", then the payload: a byte of format
            # (0 plain, 1 raw deflate) and the value (JSON, the default codec).
            header, payload = entry.split(b"\n", 1)
            if header.split(b"|")[3] == b"0":
                body = payload[1:]
                if payload[:1] == b"\x01":
                    body = zlib.decompress(body, -15)
                out = json.loads(body)
    elif op == "cache-set":
        cache, k, value, ttl = args
        keys = [key("cache", cache, "e", k), key("cache", cache, "l", k)]
        out = fcall("cache_set", keys, "", "", b"\x00" + value.encode(), ttl, "", 0, 0, "")
    elif op == "enqueue":
        q, body = args
        suffixes = [["ready"], ["inflight"], ["msgs"], ["dead"], ["signal"], ["seq"],
                    ["ready", "high"], ["ready", "low"], ["paused"], ["done"], ["results"],
                    ["groups"], ["groups", "wait"], ["groups", "count"], ["groups", "ready"],
                    ["groups", "busy"], ["groups", "rate"]]
        keys = [key("q", q, *s) for s in suffixes]
        out = fcall("queue", keys, "enqueue", 7 * 24 * 3600 * 1000, "", body, 0)[0]
    else:
        sys.exit("unknown op " + op)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
